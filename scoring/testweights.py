"""Test weights: the real architectures, randomly initialised with a fixed seed.

They go through the very loader the official weights go through; the directory's
manifest marks them ``"kind": "test"`` so no score made with them passes for official.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from scoring.weights import LOCAL_MANIFEST, MODEL_FILES, sha256_of

TEST_SEED = 20250401
TEST_WEIGHTS_VERSION = 1


def _seeded(offset: int) -> None:
    torch.manual_seed(TEST_SEED + offset)


def _clip_rn50(path: Path) -> None:
    from pyiqa.archs.clip_model import CLIP

    _seeded(1)
    model = CLIP(
        embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3), vision_width=64,
        vision_patch_size=None, context_length=77, vocab_size=49408,
        transformer_width=512, transformer_heads=8, transformer_layers=12,
    )
    # OpenAI ships CLIP as a TorchScript archive (fp16) and pyiqa's loader reads its state
    # dict from one; a plain pickled state dict does not load there. Write the same kind.
    state = {key: value.half() for key, value in model.state_dict().items()}
    torch.jit.script(_nested_holder(state)).save(str(path))


class _Holder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _nested_holder(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A scriptable module whose state dict has exactly the given (dotted) keys."""
    root = _Holder()
    for key, value in state.items():
        *path, leaf = key.split(".")
        node: torch.nn.Module = root
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, _Holder())
            node = getattr(node, part)
        node.register_buffer(leaf, value)
    return root


def _musiq(path: Path) -> None:
    from pyiqa.archs.musiq_arch import MUSIQ

    _seeded(2)
    torch.save(MUSIQ(pretrained=False).state_dict(), path)


def _maniqa(path: Path) -> None:
    from pyiqa.archs.maniqa_arch import MANIQA

    from scoring.iqa import _timm_without_hub

    _seeded(3)
    with _timm_without_hub():
        model = MANIQA(pretrained=False, train_dataset="koniq", scale=0.8)
    torch.save(model.state_dict(), path)


def _adaface(path: Path) -> None:
    from scoring.nets.adaface import IR50, save_adaface_checkpoint

    _seeded(4)
    model = IR50()
    # Random BatchNorm statistics keep the random network's embeddings from collapsing.
    generator = torch.Generator().manual_seed(TEST_SEED + 40)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            assert module.running_mean is not None and module.running_var is not None  # IR50 tracks them
            module.running_mean.normal_(0.0, 0.1, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    save_adaface_checkpoint(model, path)


def _inception(path: Path) -> None:
    from scoring.nets.inception import build_fid_inception

    _seeded(5)
    torch.save(build_fid_inception().state_dict(), path)


def _ffhq_stats(path: Path) -> None:
    # A full-rank 2048x2048 covariance, as the real FFHQ statistics have.
    rng = np.random.default_rng(TEST_SEED + 6)
    features = rng.standard_normal((4096, 2048)).astype(np.float64) * 0.3 + rng.random(2048)
    torch.save({"mean": features.mean(axis=0), "cov": np.cov(features, rowvar=False)}, path)


def _niqe(path: Path, real_params: Path | None) -> None:
    if real_params is not None and real_params.is_file():
        shutil.copyfile(real_params, path)
        return
    rng = np.random.default_rng(TEST_SEED + 7)
    a = rng.standard_normal((36, 36))
    np.savez(path, mu_pris_param=rng.random((1, 36)), cov_pris_param=a @ a.T + 36 * np.eye(36),
             gaussian_window=np.full((7, 7), 1 / 49))


def _retinaface(path: Path) -> None:
    """RetinaFace-R50 (landmarks of input sets uploaded without a CSV), random init.

    The class heads are set to say "no face" at every anchor, so the test detector
    deterministically finds no face: what the platform must then handle (the organizer
    supplies those landmarks in a CSV).
    """
    from scoring.landmarks import build_detector

    _seeded(8)
    model = build_detector("cpu")
    with torch.no_grad():
        for head in model.ClassHead:
            head.conv1x1.weight.zero_()
            bias = head.conv1x1.bias.view(-1, 2)  # (anchor, [background, face])
            bias[:, 0] = 8.0
            bias[:, 1] = -8.0
    torch.save(model.state_dict(), path)


GENERATORS = {
    "RN50.pt": _clip_rn50,
    "musiq_koniq_ckpt-e95806b9.pth": _musiq,
    "ckpt_koniq10k.pt": _maniqa,
    "adaface_ir50_ms1mv2.ckpt": _adaface,
    "pt_inception-2015-12-05-6726825d.pth": _inception,
    "inception_FFHQ_512.pth": _ffhq_stats,
    "detection_Resnet50_Final.pth": _retinaface,
}


def make_test_weights(directory: Path, niqe_params: Path | None = None, models: tuple[str, ...] | None = None,
                      progress: bool = False) -> dict[str, str]:
    """Write test weights for every model (Q-Align excepted: 8B parameters) into ``directory``.

    ``niqe_params``: the real NIQE parameters to copy (they exist on this machine); without
    them a positive-definite stand-in is generated.
    """
    directory.mkdir(parents=True, exist_ok=True)
    wanted = models or ("niqe", "clipiqa", "musiq", "maniqa", "adaface", "fid")
    names = [n for m in wanted if m != "qalign" for n in MODEL_FILES[m]]
    manifest: dict[str, object] = {"kind": "test", "seed": TEST_SEED, "version": TEST_WEIGHTS_VERSION, "files": {}}
    files: dict[str, str] = {}
    for name in names:
        target = directory / name
        partial = directory / f".{name}.part"
        if name == "niqe_pris_params.npz":
            _niqe(partial.with_suffix(".npz"), niqe_params)
            os.replace(partial.with_suffix(".npz"), target)
        elif name in GENERATORS:
            GENERATORS[name](partial)
            os.replace(partial, target)
        else:
            continue
        files[name] = sha256_of(target)
        if progress:
            print(f"  {name}: {files[name][:16]}...")
    manifest["files"] = files
    (directory / LOCAL_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return files


def ensure_test_weights(directory: Path, niqe_params: Path | None = None) -> Path:
    """Generate test weights once; later calls reuse them (they are deterministic)."""
    manifest = directory / LOCAL_MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("kind") == "test" and data.get("version") == TEST_WEIGHTS_VERSION:
            return directory
        if data.get("kind") != "test":
            return directory  # real weights live here: never overwrite them
    make_test_weights(directory, niqe_params=niqe_params)
    return directory


def default_test_weights_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ntire-fr" / f"test-weights-v{TEST_WEIGHTS_VERSION}"


def shared_niqe_params() -> Path | None:
    """The real NIQE parameters in ../shared, when this machine has them."""
    shared = os.environ.get("FR_SHARED_DIR") or str(Path(__file__).resolve().parent.parent.parent / "shared")
    path = Path(shared) / "ntire2025" / "weights" / "niqe_pris_params.npz"
    return path if path.is_file() else None
