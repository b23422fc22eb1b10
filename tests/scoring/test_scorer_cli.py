"""score_restored against direct pyiqa calls, its determinism, and ``python -m scoring score`` end to end.

All with the test weights (real architectures, random init). MANIQA runs with
``test_sample=2`` (2 crops instead of pyiqa's 20) in these tests: with its default 20
crops it takes about 70 s per image on a 2-core CPU, too slow for every run of the suite.
test_iqa.py compares MANIQA at its default options with pyiqa (marked slow).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import scipy.io
import torch

from scoring.cli import main as cli_main
from scoring.cli import with_metric_options
from scoring.inputs import read_landmarks, scan_inputs
from scoring.iqa import _timm_without_hub
from scoring.profile import ScoringProfile, get_profile
from scoring.report_csv import ALL_ROW, TOTAL_HEADER, WEIGHTED_ROW
from scoring.results import ScoreReport
from scoring.scorer import load_models, score_restored
from scoring.weights import LOCAL_MANIFEST, MODEL_FILES
from tests.support.env import ROOT, subset_of_validation

DATASETS = ["CelebA", "CelebChild-Test", "LFW-Test", "WebPhoto-Test", "Wider-Test"]
FEW_CROPS = {"maniqa": {"test_sample": 2}}
PROFILE = dataclasses.replace(get_profile("ntire2025-no-qalign"), metric_options=FEW_CROPS)
# Batched against one-image pyiqa calls on one machine: float32 noise. The largest difference
# bench/numeric_paths.py saw between numeric paths of one machine was 5.7e-7 (MUSIQ, a 0..100 scale).
TOLERANCE = 1e-5
# Largest |pyiqa's own NIQE - ours| over the 450 validation inputs on a CPU whose BLAS rounds the
# luma differently (AMD EPYC with MKL: 417 of 450 images move, the largest by 0.0597; bench/numeric_paths.py
# --niqe-all). The images compared here are among those 450.
NIQE_LUMA_SPREAD = 0.06


def report_numbers(report: ScoreReport) -> dict:
    data = report.to_dict()
    data.pop("timings")  # wall-clock seconds, the only thing allowed to differ
    return data


@pytest.fixture(scope="module")
def scored(weights_dir, tmp_path_factory):
    """Two CelebA validation inputs scored twice, each as its own restored image."""
    inputs_dir, landmarks_csv = subset_of_validation(tmp_path_factory.mktemp("scorer"), per_dataset=2)
    inputs = [image for image in scan_inputs(inputs_dir) if image.dataset == "CelebA"]
    assert len(inputs) == 2
    landmarks = read_landmarks(landmarks_csv)
    models = load_models(weights_dir, PROFILE, "cpu")
    first = score_restored(inputs, landmarks, inputs_dir, PROFILE, models)
    second = score_restored(inputs, landmarks, inputs_dir, PROFILE, models)
    # One image a batch, so that there is a next batch to read ahead: with and without the reader thread.
    ahead = score_restored(inputs, landmarks, inputs_dir, PROFILE, models, batch_size=1)
    in_turn = score_restored(inputs, landmarks, inputs_dir, PROFILE, models, batch_size=1, prefetch=False)
    # Other images per call than the defaults (MANIQA 1, the rest the whole batch): both MANIQA images in one
    # forward call, the other metrics one image a call.
    resized = score_restored(inputs, landmarks, inputs_dir, PROFILE, models,
                             images_per_call={"maniqa": 2, "niqe": 1, "clipiqa": 1, "musiq": 1})
    return inputs, first, second, ahead, in_turn, resized


def direct_pyiqa(name: str, weights_dir: Path, scratch: Path, **options) -> torch.nn.Module:
    """``pyiqa.create_metric`` handed the same weight files, as each metric accepts a local one."""
    import numpy as np
    import pyiqa

    path = weights_dir / MODEL_FILES[name][0]
    if name == "niqe":
        params = np.load(path)
        mat = scratch / "niqe.mat"
        scipy.io.savemat(mat, {"mu_prisparam": params["mu_pris_param"], "cov_prisparam": params["cov_pris_param"]})
        return pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=str(mat), **options)
    if name == "clipiqa":
        return pyiqa.create_metric("clipiqa", device="cpu", backbone=str(path), **options)
    if name == "musiq":
        return pyiqa.create_metric("musiq", device="cpu", pretrained_model_path=str(path), **options)
    assert name == "maniqa"
    with _timm_without_hub():
        metric = pyiqa.create_metric("maniqa", device="cpu", pretrained=False, **options)
    metric.load_weights(str(path), weight_keys=None)
    return metric.eval()


@pytest.mark.parametrize("name", ["niqe", "clipiqa", "musiq", "maniqa"])
def test_score_restored_equals_direct_pyiqa_per_image(scored, weights_dir, tmp_path, name):
    inputs, report, *_ = scored
    metric = direct_pyiqa(name, weights_dir, tmp_path, **PROFILE.metric_options.get(name, {}))
    # score_restored scores both images in one batch; pyiqa here gets one file at a time
    # and reads it itself. MANIQA on one image only (slow on a CPU).
    chosen = inputs[:1] if name == "maniqa" else inputs
    for image, result in zip(chosen, report.images):
        assert (result.dataset, result.stem) == (image.dataset, image.stem)
        with torch.inference_mode():
            expected = float(metric(str(image.path)).item())
        tolerance = TOLERANCE
        if name == "niqe" and not pyiqa_luma_is_fma_ordered(image.path):
            # pyiqa rounds its luma as this CPU's BLAS computes it, ours as an FMA kernel does
            # (scoring/niqe.py); where a pixel rounds differently NIQE moves, at most this much.
            tolerance = NIQE_LUMA_SPREAD
        assert abs(result.metrics[name] - expected) <= tolerance, (image.relpath, result.metrics[name], expected)


def pyiqa_luma_is_fma_ordered(path: Path) -> bool:
    """Whether pyiqa's own luma of ``path`` equals the fixed-order one on every pixel, on this machine."""
    from pyiqa.utils.color_util import to_y_channel

    from scoring.niqe import fma_ordered_luma
    from scoring.scorer import read_rgb, to_unit_tensor

    rgb = to_unit_tensor(read_rgb(path)).unsqueeze(0)
    return torch.equal(to_y_channel(rgb, 255, "yiq").double(), fma_ordered_luma(rgb))


def test_scoring_the_same_folder_twice_gives_identical_numbers(scored):
    _, first, second, *_ = scored
    assert report_numbers(first) == report_numbers(second)


def test_reading_ahead_changes_no_number(scored):
    _, _, _, ahead, in_turn, _ = scored
    assert report_numbers(ahead) == report_numbers(in_turn)


def test_images_per_call_changes_no_score_beyond_float32_rounding(scored):
    _, first, _, _, _, resized = scored
    for default, other in zip(first.images, resized.images, strict=True):
        assert (default.dataset, default.stem) == (other.dataset, other.stem)
        for name, value in default.metrics.items():
            assert abs(other.metrics[name] - value) <= TOLERANCE, (name, value, other.metrics[name])
        assert other.id_similarity == default.id_similarity  # the identity test does not batch by metric
    assert resized.overall["fid"] == pytest.approx(first.overall["fid"], abs=TOLERANCE)


def test_report_of_restored_equal_to_inputs(scored, weights_dir):
    inputs, report, *_ = scored
    assert [(i.dataset, i.stem) for i in report.images] == [(i.dataset, i.stem) for i in inputs]
    for image in report.images:
        assert abs(image.id_similarity - 1.0) <= TOLERANCE  # the restored image is the input
        assert not image.id_failed
        assert set(image.metrics) == {"niqe", "clipiqa", "maniqa", "musiq"}
    assert report.failed_count == 0 and report.valid
    assert [d.dataset for d in report.datasets] == ["CelebA"]
    assert "fid" in report.overall and "fid" in report.datasets[0].metrics  # two images: per-dataset FID too
    # Every file used is recorded with its sha256, and test weights are never official.
    pinned = json.loads((weights_dir / LOCAL_MANIFEST).read_text())["files"]
    assert report.weights == pinned
    assert report.official_weights is False
    # The numeric environment is recorded beside the versions: CPU, torch's kernels, both BLAS.
    assert report.versions["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert report.versions["cpu"] and report.versions["torch_blas"] and report.versions["numpy_blas"]
    assert "gpu" not in report.versions and report.device == "cpu"
    # The profile snapshot carries the MANIQA option, so the score can be reproduced.
    assert report.profile["metric_options"] == FEW_CROPS
    assert ScoringProfile.from_dict(report.profile) == PROFILE


# --- --metric-option ------------------------------------------------------------------------------


def test_metric_option_parsing():
    base = get_profile("ntire2025-no-qalign")
    assert with_metric_options(base, []) is base
    profile = with_metric_options(base, ["maniqa.test_sample=2", "musiq.scale=0.5", "clipiqa.model_type=clipiqa"])
    assert profile.metric_options == {
        "maniqa": {"test_sample": 2},
        "musiq": {"scale": 0.5},
        "clipiqa": {"model_type": "clipiqa"},
    }
    assert isinstance(profile.metric_options["maniqa"]["test_sample"], int)
    assert profile.name == base.name and profile.terms == base.terms
    assert base.metric_options == {}  # the preset itself is untouched
    assert ScoringProfile.from_dict(profile.to_dict()) == profile
    for bad in ["maniqa", "maniqa=2", "test_sample=2", ".x=1", "maniqa.=1", "qalign.x=1", "fid.x=1", "nope.x=1"]:
        with pytest.raises(ValueError, match="--metric-option"):
            with_metric_options(base, [bad])


# --- python -m scoring score ----------------------------------------------------------------------


def run_score(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoring", "score", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )


def read_csv(path: Path) -> tuple[str, list[list[str]]]:
    raw = path.read_bytes().decode("utf-8")
    with open(path, newline="", encoding="utf-8") as handle:
        return raw, list(csv.reader(handle))


@pytest.mark.slow
def test_score_cli_end_to_end(weights_dir, tmp_path):
    # About 75 s of CPU (110-180 s wall on the shared 2-core machine): a fresh process loads
    # every model, hashes 1.2 GB of weights and scores 5 images. The in-process test below
    # covers the same command with the two-metric profile in the default run.
    inputs, landmarks = subset_of_validation(tmp_path, per_dataset=1)
    restored = tmp_path / "restored.zip"
    with zipfile.ZipFile(restored, "w") as zf:
        for png in sorted(inputs.rglob("*.png")):
            zf.write(png, png.relative_to(inputs).as_posix())
    out = tmp_path / "out"
    done = run_score(
        "--inputs", str(inputs), "--landmarks", str(landmarks), "--restored", str(restored),
        "--weights", str(weights_dir), "--out", str(out), "--profile", "ntire2025-no-qalign",
        "--device", "cpu", "--json",
        # MANIQA with 2 crops instead of 20: 5 images at pyiqa's default take ~7 minutes here.
        "--metric-option", "maniqa.test_sample=2",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)  # nothing but the JSON on stdout

    assert summary["ok"] is True and summary["profile"] == "ntire2025-no-qalign"
    assert summary["metric_options"] == FEW_CROPS
    assert isinstance(summary["total"], float) and summary["total"] >= 0
    assert summary["failed_count"] == 0 and summary["valid"] is True
    assert summary["official_weights"] is False
    assert summary["weights"] == json.loads((weights_dir / LOCAL_MANIFEST).read_text())["files"]
    assert all(len(digest) == 64 for digest in summary["weights"].values())
    assert list(summary["datasets"]) == DATASETS
    assert set(summary["all"]) == {"niqe", "clipiqa", "maniqa", "musiq", "fid", "id_sim"}
    assert abs(summary["all"]["id_sim"] - 1.0) <= TOLERANCE

    total_path, images_path = (Path(p) for p in summary["csv"])
    assert (total_path, images_path) == (out / "result_total.csv", out / "result.csv")
    raw, rows = read_csv(total_path)
    assert raw.startswith("Dataset,NIQE,CLIP_IQA,MANIQA,MUSIQ,QALIGN,FID,ID_Sim,low_ID_Sim,Total\r\n")
    assert rows[0] == list(TOTAL_HEADER)
    assert [row[0] for row in rows[1:]] == [*DATASETS, ALL_ROW, WEIGHTED_ROW]
    table = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert float(table[WEIGHTED_ROW]["Total"]) == pytest.approx(summary["total"], abs=1e-12)
    assert float(table[ALL_ROW]["FID"]) == pytest.approx(summary["all"]["fid"], abs=1e-9)
    assert table[ALL_ROW]["QALIGN"] == "0"  # not computed in this profile
    for dataset in DATASETS:
        assert float(table[dataset]["CLIP_IQA"]) == pytest.approx(summary["datasets"][dataset]["clipiqa"], abs=1e-12)

    raw, rows = read_csv(images_path)
    assert raw.startswith("Filename,CLIP_IQA,Dataset,ID_Sim,MANIQA,MUSIQ,NIQE\r\n")
    assert len(rows) == 1 + len(DATASETS)
    assert sorted(row[2] for row in rows[1:]) == DATASETS
    assert {row[0] for row in rows[1:]} == {f"{png.stem}.png" for png in inputs.rglob("*.png")}


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--metric-option", "maniqa"], "bad_option"),
        (["--metric-option", "qalign.x=1"], "bad_option"),
        (["--images-per-call", "maniqa=0"], "bad_option"),
        (["--images-per-call", "fid=4"], "bad_option"),
        (["--profile", "no-such-profile"], "bad_inputs"),
        ([], "bad_inputs"),  # the inputs folder does not exist
    ],
)
def test_score_command_errors_are_json(tmp_path, capsys, extra, code):
    argv = [
        "score", "--inputs", str(tmp_path / "absent"), "--landmarks", str(tmp_path / "absent.csv"),
        "--restored", str(tmp_path), "--weights", str(tmp_path), "--out", str(tmp_path / "out"), "--json", *extra,
    ]
    assert cli_main(argv) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    payload = json.loads(out)
    assert payload["ok"] is False
    assert [error["code"] for error in payload["errors"]] == [code]
    assert set(payload["errors"][0]) == {"code", "path", "message"}
    if not extra:
        assert "inputs folder not found" in payload["errors"][0]["message"]


def test_score_command_without_weights_names_the_fetch_command(tmp_path, capsys):
    inputs, landmarks = subset_of_validation(tmp_path, per_dataset=1)
    empty = tmp_path / "no-weights"
    empty.mkdir()
    argv = [
        "score", "--inputs", str(inputs), "--landmarks", str(landmarks), "--restored", str(inputs),
        "--weights", str(empty), "--out", str(tmp_path / "out"), "--device", "cpu", "--json",
    ]
    assert cli_main(argv) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    (error,) = json.loads(out)["errors"]
    assert error["code"] == "weights"
    assert f"python -m scoring weights fetch {empty}" in error["message"]
    assert not (tmp_path / "out").exists()


def test_score_command_in_process_with_the_dev_profile(weights_dir, tmp_path, capsys):
    # The success path of `score` in the fast suite: CLIP-IQA and MUSIQ only, restored = a folder.
    inputs, landmarks = subset_of_validation(tmp_path, per_dataset=1)
    out = tmp_path / "out"
    argv = [
        "score", "--inputs", str(inputs), "--landmarks", str(landmarks), "--restored", str(inputs),
        "--weights", str(weights_dir), "--out", str(out), "--profile", "ntire2025-dev", "--name", "dev",
        "--device", "cpu", "--json",
    ]
    assert cli_main(argv) == 0
    stdout, stderr = capsys.readouterr()
    assert "Traceback" not in stderr
    summary = json.loads(stdout)  # pyiqa's "Loading pretrained model" lines went to stderr
    assert summary["profile"] == "ntire2025-dev" and summary["metric_options"] == {}
    assert list(summary["datasets"]) == DATASETS
    assert set(summary["all"]) == {"clipiqa", "musiq", "id_sim"}
    assert summary["total"] == pytest.approx(summary["all"]["clipiqa"] + summary["all"]["musiq"] / 100, abs=1e-12)
    assert summary["failed_count"] == 0 and summary["valid"] is True
    assert summary["official_weights"] is False
    pinned = json.loads((weights_dir / LOCAL_MANIFEST).read_text())["files"]
    used = [*MODEL_FILES["adaface"], *MODEL_FILES["clipiqa"], *MODEL_FILES["musiq"]]
    assert summary["weights"] == {name: pinned[name] for name in used}

    raw, rows = read_csv(out / "dev_total.csv")
    assert raw.startswith("Dataset,NIQE,CLIP_IQA,MANIQA,MUSIQ,QALIGN,FID,ID_Sim,low_ID_Sim,Total\r\n")
    assert [row[0] for row in rows[1:]] == [*DATASETS, ALL_ROW, WEIGHTED_ROW]
    raw, rows = read_csv(out / "dev.csv")
    assert raw.startswith("Filename,CLIP_IQA,Dataset,ID_Sim,MUSIQ\r\n")
    assert len(rows) == 1 + len(DATASETS)
