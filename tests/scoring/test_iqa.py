"""pyiqa metrics built from verified local files: NIQE against pyiqa's calibration, MANIQA against pyiqa.

The per-image equality of NIQE, CLIP-IQA, MUSIQ and MANIQA (fewer crops) through
``score_restored`` with direct ``pyiqa.create_metric`` calls is in test_scorer_cli.py,
where the loaded models are shared; here the MANIQA check with pyiqa's default options.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from scoring.iqa import _timm_without_hub, create_iqa_metric, niqe_mat_from_npz, score_batch
from scoring.scorer import read_rgb, to_unit_tensor
from scoring.weights import MODEL_FILES, WeightStore
from tests.support.env import in_ci, shared_dir

NIQE = "niqe_pris_params.npz"


def calibration_dir() -> Path:
    path = shared_dir() / "reference" / "pyiqa-calibration"
    if not (path / "calibration_summary.csv").is_file():
        message = f"pyiqa's calibration data is not at {path}"
        if in_ci():
            pytest.fail(message)  # as for the rest of the shared data: CI never skips it
        pytest.skip(message)
    return path


def calibration_row(method: str) -> dict[str, float]:
    with open(calibration_dir() / "calibration_summary.csv", newline="") as handle:
        rows = {row[0]: row[1:] for row in csv.reader(handle)}
    return {image: float(value) for image, value in zip(rows["Method"], rows[method], strict=True)}


def first_validation_image() -> Path:
    val = shared_dir() / "ntire2025" / "val"
    return sorted(sorted(p for p in val.iterdir() if p.is_dir())[0].glob("*.png"))[0]


def test_niqe_with_the_real_parameters_reproduces_pyiqa_calibration(tmp_path):
    # The real parameters through our loader: the packaged (official) checksum is verified.
    shutil.copyfile(shared_dir() / "ntire2025" / "weights" / NIQE, tmp_path / NIQE)
    store = WeightStore(tmp_path)
    assert store.is_official(NIQE)
    metric = create_iqa_metric("niqe", store, "cpu")
    expected = calibration_row("niqe(ours)")
    assert len(expected) == 5
    for name, value in expected.items():
        # As pyiqa reads an image: PIL, converted to RGB, to_tensor -> [0, 1] float.
        with Image.open(calibration_dir() / "dist_dir" / name) as image:
            tensor = to_tensor(image.convert("RGB")).unsqueeze(0)
        (score,) = score_batch(metric, tensor)
        # pyiqa's table has 4 decimals; our values agree to < 6e-4 (I03: 15.6532 vs 15.6538).
        assert abs(score - value) <= 1e-3, (name, score, value)


def test_niqe_mat_conversion_is_lossless(tmp_path):
    npz_path = shared_dir() / "ntire2025" / "weights" / NIQE
    mat = scipy.io.loadmat(niqe_mat_from_npz(npz_path, tmp_path))
    params = np.load(npz_path)
    np.testing.assert_array_equal(np.ravel(mat["mu_prisparam"]), np.ravel(params["mu_pris_param"]))
    np.testing.assert_array_equal(mat["cov_prisparam"], params["cov_pris_param"])
    assert mat["cov_prisparam"].dtype == np.float64


def test_read_rgb_gives_pyiqa_tensor():
    # score_restored reads with read_rgb + to_unit_tensor; pyiqa with PIL + to_tensor: same floats.
    path = first_validation_image()
    ours = to_unit_tensor(read_rgb(path))
    with Image.open(path) as image:
        theirs = to_tensor(image.convert("RGB"))
    assert torch.equal(ours, theirs)


class RecordingMetric(torch.nn.Module):
    """Stands in for a pyiqa InferenceModel: a per-image score, and the batch sizes it was given."""

    def __init__(self, metric_name: str) -> None:
        super().__init__()
        self.metric_name = metric_name
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return x.mean(dim=(1, 2, 3)).unsqueeze(1)


def test_score_batch_gives_maniqa_one_image_at_a_time():
    # MANIQA's memory grows with images x 20 crops (19.2 GiB peak RSS with 8): one per call.
    batch = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    expected = batch.mean(dim=(1, 2, 3)).double().tolist()
    maniqa = RecordingMetric("maniqa")
    assert score_batch(maniqa, batch) == pytest.approx(expected, abs=1e-7)
    assert maniqa.calls == [1, 1, 1, 1, 1]
    clipiqa = RecordingMetric("clipiqa")
    assert score_batch(clipiqa, batch) == pytest.approx(expected, abs=1e-7)
    assert clipiqa.calls == [5]
    assert score_batch(maniqa, batch[:0]) == []


def direct_maniqa(weights_dir: Path, **options) -> torch.nn.Module:
    """pyiqa's MANIQA built by hand: no hub download for its ViT, then the weights file loaded."""
    import pyiqa

    with _timm_without_hub():
        metric = pyiqa.create_metric("maniqa", device="cpu", pretrained=False, **options)
    metric.load_weights(str(weights_dir / MODEL_FILES["maniqa"][0]), weight_keys=None)
    return metric.eval()


@pytest.mark.slow
def test_maniqa_default_options_equal_direct_pyiqa(weights_dir):
    # pyiqa's default 20 crops of 224x224: about 70 s per image on a 2-core CPU, twice.
    path = first_validation_image()
    ours = create_iqa_metric("maniqa", WeightStore(weights_dir), "cpu")
    assert ours.net.test_sample == 20
    (our_score,) = score_batch(ours, to_unit_tensor(read_rgb(path)).unsqueeze(0))
    del ours
    theirs = direct_maniqa(weights_dir)
    with torch.inference_mode():
        their_score = float(theirs(str(path)).item())  # pyiqa reads the file itself
    assert abs(our_score - their_score) <= 1e-5, (our_score, their_score)
