"""How far the scorer's numbers move between numeric paths of one machine, side by side in one run.

    .venv/bin/python bench/numeric_paths.py [--per-dataset 1] [--niqe-all] [--json-out FILE]

Each path is a child process with other environment variables: torch's SIMD kernels
(``ATEN_CPU_CAPABILITY``), MKL's code path (``MKL_CBWR``) and the thread count. Every child
scores the same images (the first ``--per-dataset`` validation inputs of each dataset, blurred
so that they are not their own restoration) with profile ``ntire2025-no-qalign`` (MANIQA with
2 crops, as the tests use it) and the test weights, AdaFace's BatchNorm statistics recalibrated
on 24 other validation faces so that its similarities spread (once, by the first path; the
others load that checkpoint, so only the inference differs). The parent prints, per metric,
the largest difference from the first path, and the CPU it ran on. A second CPU family is a
second run of this script on that machine: compare the JSON files.

``--niqe-all`` adds pyiqa's own NIQE (its float32 matmul luma, whatever this CPU's BLAS
does) against the fixed-order NIQE on all 450 validation inputs, and what that moves in the
weighted total.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

PATHS: dict[str, dict[str, str]] = {
    "as configured": {},
    "torch default kernels, 1 thread": {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
    "torch AVX2 kernels, MKL_CBWR=COMPATIBLE": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"},
}


def child(per_dataset: int, out: Path, adaface: Path) -> None:
    import dataclasses

    from PIL import Image, ImageFilter

    from scoring.identity import IdentityScorer
    from scoring.inputs import read_landmarks, scan_inputs
    from scoring.iqa import score_batch
    from scoring.nets.adaface import load_adaface, save_adaface_checkpoint
    from scoring.profile import get_profile
    from scoring.provenance import provenance
    from scoring.scorer import load_models, read_rgb, score_restored, to_unit_tensor
    from scoring.weights import MODEL_FILES, WeightStore
    from tests.support.env import shared_dir, subset_of_validation, test_weights_dir
    from tests.support.identity_spread import recalibrated_adaface

    profile = dataclasses.replace(get_profile("ntire2025-no-qalign"), metric_options={"maniqa": {"test_sample": 2}})
    weights = test_weights_dir()
    with tempfile.TemporaryDirectory() as tmp:
        inputs_dir, landmarks_csv = subset_of_validation(Path(tmp), per_dataset=per_dataset)
        inputs = scan_inputs(inputs_dir)
        landmarks = read_landmarks(landmarks_csv)
        restored = Path(tmp) / "restored"
        for image in inputs:
            (restored / image.dataset).mkdir(parents=True, exist_ok=True)
            with Image.open(image.path) as source:
                source.convert("RGB").filter(ImageFilter.GaussianBlur(2)).save(restored / image.relpath)
        models = load_models(weights, profile, "cpu")
        val = shared_dir() / "ntire2025"
        all_landmarks = read_landmarks(val / "val_face.csv")
        chosen = {image.stem for image in inputs}
        calibration = [p for p in sorted(val.glob("val/*/*.png")) if p.stem not in chosen][::18][:24]
        if adaface.is_file():  # one recalibration, made by the first path, for every path
            model = load_adaface(adaface)
        else:
            model = recalibrated_adaface(
                WeightStore(weights).path(MODEL_FILES["adaface"][0]),
                [(read_rgb(p), all_landmarks[p.stem].points) for p in calibration],
            )
            save_adaface_checkpoint(model, adaface)
        models.identity = IdentityScorer(model, "cpu")
        report = score_restored(inputs, landmarks, restored, profile, models)
        raw_niqe = models.iqa["niqe"].metric  # pyiqa's own NIQE, with its matmul luma
        raw = [score_batch(raw_niqe, to_unit_tensor(read_rgb(restored / i.relpath)).unsqueeze(0))[0] for i in inputs]
    data: dict[str, Any] = {
        "provenance": provenance("cpu"),
        "images": {f"{i.dataset}/{i.stem}": {**i.metrics, "id_similarity": i.id_similarity} for i in report.images},
        "raw_niqe": dict(zip([f"{i.dataset}/{i.stem}" for i in inputs], raw, strict=True)),
        "fid": report.overall.get("fid"),
        "total": report.total,
    }
    out.write_text(json.dumps(data), encoding="utf-8")


def niqe_all() -> dict[str, float]:
    import numpy as np
    import torch

    from scoring.iqa import create_iqa_metric, score_batch
    from scoring.scorer import read_rgb, to_unit_tensor
    from scoring.weights import WeightStore
    from tests.support.env import shared_dir, test_weights_dir

    fixed = create_iqa_metric("niqe", WeightStore(test_weights_dir()), "cpu")
    differences = []
    started = time.perf_counter()
    for png in sorted((shared_dir() / "ntire2025" / "val").glob("*/*.png")):
        batch = to_unit_tensor(read_rgb(png)).unsqueeze(0)
        (ours,) = score_batch(fixed, batch)
        with torch.inference_mode():
            theirs = float(fixed.metric(batch).item())
        differences.append(ours - theirs)
    d = np.array(differences)
    return {
        "images": len(d), "images_that_differ": int((d != 0).sum()), "max_abs": float(np.abs(d).max()),
        "mean_abs": float(np.abs(d).mean()), "mean_niqe_shift": float(d.mean()),
        # The NIQE term of the total is max(0, (10 - mean NIQE) / 10).
        "total_shift": float(abs(d.mean()) / 10), "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-dataset", type=int, default=1)
    parser.add_argument("--niqe-all", action="store_true")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.per_dataset, args.child, args.child.parent / "adaface-recalibrated.ckpt")
        return

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, variables in PATHS.items():
            out = Path(tmp) / "out.json"
            env = {**os.environ, **variables, "PYTHONPATH": str(ROOT)}
            started = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--child", str(out), "--per-dataset", str(args.per_dataset)],
                           env=env, check=True)
            results[label] = json.loads(out.read_text(encoding="utf-8"))
            print(f"{label}: {time.perf_counter() - started:.0f} s, "
                  f"torch kernels {results[label]['provenance']['cpu_capability']}", flush=True)

    first_label, first = next(iter(results.items()))
    print(f"\nCPU: {first['provenance']['cpu']}; torch BLAS {first['provenance']['torch_blas']}; "
          f"numpy BLAS {first['provenance']['numpy_blas']}; load average {os.getloadavg()[0]:.1f}")
    print(f"largest |difference| from '{first_label}' over {len(first['images'])} images:")
    spread: dict[str, float] = {}
    keys = sorted(next(iter(first["images"].values())))
    for key in keys:
        spread[key] = max(abs(r["images"][image][key] - first["images"][image][key])
                          for r in results.values() for image in first["images"])
    spread["fid"] = max(abs(r["fid"] - first["fid"]) for r in results.values())
    spread["total"] = max(abs(r["total"] - first["total"]) for r in results.values())
    for key, value in spread.items():
        print(f"  {key:14s} {value:.3g}")
    raw = max(abs(first["raw_niqe"][image] - first["images"][image]["niqe"]) for image in first["images"])
    print(f"pyiqa's own NIQE (its BLAS luma) against the fixed-order NIQE, same images: {raw:.3g}")
    summary: dict[str, Any] = {"paths": results, "spread": spread, "raw_niqe_vs_fixed": raw}
    if args.niqe_all:
        summary["niqe_all"] = niqe_all()
        print("all validation inputs, pyiqa's own NIQE against the fixed-order NIQE:", summary["niqe_all"])
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
