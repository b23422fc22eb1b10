"""bench/device_run.py in its fast mode on the CPU, so the GPU run cannot break unseen.

A GPU machine is lent to some sessions only, for a few minutes: the script must work the
first time there. Here it runs as it would there, on the CPU, one input per dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.env import ROOT, shared_dir

pytestmark = pytest.mark.slow


def test_device_run_fast_mode_writes_every_figure(weights_dir, tmp_path):
    shared_dir()  # a loud failure in CI when the data is missing
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "FR_FID_CACHE": str(tmp_path / "fid-cache")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "device_run.py"), "--fast", "--device", "cpu",
         "--weights", str(weights_dir), "--check-images", "2"],
        env=env, capture_output=True, text=True, timeout=1500, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "device_run.json").read_text(encoding="utf-8"))
    assert report["device"] == "cpu" and report["images"] == 5 and report["fast"] is True
    assert report["provenance"]["cpu"] and "gpu" not in report["provenance"]
    metrics = {"niqe", "clipiqa", "maniqa", "musiq"}
    assert metrics | {"adaface", "fid_features"} == set(report["pure_forward"])
    for entry in report["pure_forward"].values():
        assert entry["seconds"] > 0 and entry["images_per_s"] > 0 and entry["peak_gpu_bytes"] is None
    assert report["warm"]["wall_s"] > 0 and report["warm_over_pure_forward"] > 0
    assert report["cold"]["wall_s"] >= report["cold"]["load_s"] > 0
    assert report["eval_py_way"]["wall_s"] > 0 and report["speedup_warm_vs_eval_py"] > 0
    # The eval.py way and the platform give the same numbers (one process, one device).
    diff = report["max_diff_platform_vs_eval_py"]
    assert set(diff) == metrics | {"id_similarity", "fid"}
    assert all(value <= 1e-5 for value in diff.values()), diff
    # On the CPU the device check compares the CPU with itself: exactly equal.
    assert report["check_images"] == 2 and all(v == 0 for v in report["max_diff_device_vs_cpu"].values())
    # The images-per-call sweep measured each metric at each size, picked the fastest, and the warm run with
    # those sizes gives the eval.py way's numbers too.
    assert set(report["images_per_call_sweep"]) == metrics
    for name, entry in report["images_per_call_sweep"].items():
        assert set(entry["sizes"]) == {"1", "2"}
        rates = {int(size): value["images_per_s"] for size, value in entry["sizes"].items()}
        assert entry["best"] == max(rates, key=rates.__getitem__) == report["best_images_per_call"][name]
    assert report["FR_IMAGES_PER_CALL"] == ",".join(f"{k}={v}" for k, v in report["best_images_per_call"].items())
    assert report["warm_tuned"]["wall_s"] > 0 and report["warm_tuned_over_pure_forward"] > 0
    assert set(report["pure_forward_tuned"]) == set(report["pure_forward"])
    assert all(value <= 1e-5 for value in report["max_diff_tuned_vs_eval_py"].values())
    assert "Hugging Face" in report["qalign"]
    header = (out / "per_image.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("image,") and "maniqa" in header
