"""pyiqa metrics built from verified local files, never from a hub download.

pyiqa's constructors download their weights when not told otherwise; each loader
below hands pyiqa a verified local path instead, in the way that metric accepts one.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scoring.batching import DEFAULT_IMAGES_PER_CALL
from scoring.maniqa import streamline
from scoring.niqe import FixedOrderNiqe
from scoring.weights import MODEL_FILES, WeightStore

_timm_lock = threading.Lock()


@contextlib.contextmanager
def _timm_without_hub() -> Iterator[None]:
    """MANIQA's constructor asks timm for an ImageNet ViT from the hub, then overwrites every
    one of its weights with the MANIQA checkpoint; build the ViT without the download."""
    import timm

    original = timm.create_model

    def create_model(model_name: str, pretrained: bool = False, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return original(model_name, False, *args, **kwargs)

    with _timm_lock:
        timm.create_model = create_model
        try:
            yield
        finally:
            timm.create_model = original


def niqe_mat_from_npz(npz_path: Path, out_dir: Path) -> Path:
    """pyiqa reads NIQE parameters from a MATLAB file; convert BasicSR's npz losslessly."""
    import scipy.io

    params = np.load(npz_path)
    mat_path = out_dir / "niqe_pris_params.mat"
    scipy.io.savemat(
        mat_path,
        {"mu_prisparam": params["mu_pris_param"], "cov_prisparam": params["cov_pris_param"]},
    )
    return mat_path


def create_iqa_metric(
    name: str, store: WeightStore, device: torch.device | str, options: dict[str, Any] | None = None, *,
    streamlined: bool = True,
) -> torch.nn.Module:
    """A pyiqa InferenceModel for ``name`` with weights from ``store``. MANIQA comes streamlined
    (scoring.maniqa); ``streamlined=False`` gives pyiqa's model as eval.py builds it, for comparisons."""
    import pyiqa
    from pyiqa.archs.arch_util import load_pretrained_network

    opts = dict(options or {})
    (first, *_rest) = MODEL_FILES[name]
    if name == "niqe":
        with tempfile.TemporaryDirectory() as tmp:
            mat = niqe_mat_from_npz(store.path(first), Path(tmp))
            metric = pyiqa.create_metric("niqe", device=device, pretrained_model_path=str(mat), **opts)
        # pyiqa's luma rounding depends on the CPU's BLAS kernel: compute it in one fixed order.
        return FixedOrderNiqe(metric)
    if name == "clipiqa":
        # pyiqa's CLIP loader accepts a file path as the backbone name.
        return pyiqa.create_metric("clipiqa", device=device, backbone=str(store.path(first)), **opts)
    if name == "musiq":
        return pyiqa.create_metric("musiq", device=device, pretrained_model_path=str(store.path(first)), **opts)
    if name == "maniqa":
        path = store.path(first)
        with _timm_without_hub():
            metric = pyiqa.create_metric("maniqa", device=device, pretrained=False, **opts)
        load_pretrained_network(metric.net, str(path), True)
        if streamlined:
            streamline(metric.net)
        return metric.eval()
    if name == "qalign":
        return _create_qalign(store, device, opts)
    raise KeyError(f"not a pyiqa metric of this scorer: {name}")


def _create_qalign(store: WeightStore, device: torch.device | str, opts: dict[str, Any]) -> torch.nn.Module:
    """Q-Align names its Hugging Face repository in code; serve it from the verified snapshot."""
    import os

    import pyiqa

    snapshot = store.path(MODEL_FILES["qalign"][0])
    if torch.device(device).type != "cuda":
        raise RuntimeError("Q-Align needs a CUDA device (about 15 GB of GPU memory in fp16)")
    from huggingface_hub import constants

    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    original_resolve = constants.HF_HUB_CACHE
    try:
        # transformers resolves "q-future/one-align" in the hub cache layout; point it at the snapshot.
        cache = snapshot.parent / "hf-cache"
        link_dir = cache / "models--q-future--one-align" / "snapshots"
        link_dir.mkdir(parents=True, exist_ok=True)
        (cache / "models--q-future--one-align" / "refs").mkdir(exist_ok=True)
        (cache / "models--q-future--one-align" / "refs" / "main").write_text("local")
        link = link_dir / "local"
        if not link.exists():
            link.symlink_to(snapshot.resolve(), target_is_directory=True)
        constants.HF_HUB_CACHE = str(cache)
        return pyiqa.create_metric("qalign", device=device, **opts)
    finally:
        constants.HF_HUB_CACHE = original_resolve
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


@torch.inference_mode()
def score_batch(metric: torch.nn.Module, batch: torch.Tensor, images_per_call: int | None = None) -> list[float]:
    """Scores of a (N,3,H,W) [0,1] batch, one float per image, ``images_per_call`` images a forward call
    (default: DEFAULT_IMAGES_PER_CALL's for the metric, else the whole batch)."""
    step = images_per_call or DEFAULT_IMAGES_PER_CALL.get(getattr(metric, "metric_name", ""), batch.shape[0])
    step = max(1, step)
    scores: list[float] = []
    for start in range(0, batch.shape[0], step):
        chunk = batch[start:start + step]
        output = metric(chunk)
        scores.extend(output.reshape(chunk.shape[0], -1)[:, 0].double().cpu().tolist())
    return scores
