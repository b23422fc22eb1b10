"""Scoring throughput: the organizers' naive loop against the platform's worker path, side by side.

    .venv/bin/python bench/scoring_throughput.py [--per-dataset 1] [--naive-fid fast|scipy] [--json-out FILE]
                                                 [--profile ntire2025-no-qalign]

``--profile`` scores every metric of a named profile instead (MANIQA's 20 crops included; the naive
path builds MANIQA as eval.py does, pyiqa's whole model). Default profile:
``bench-no-maniqa`` = CLIP-IQA + MUSIQ + NIQE + FID (+ the AdaFace identity test, which
every profile runs), i.e. ``ntire2025-no-qalign`` without MANIQA, whose 20-crop ViT costs
~80 s per image on a 2-core CPU. Weights: the generated test weights
(``tests.support.env.test_weights_dir()``: the real architectures, random init, so the compute
is the real one). Images: the first ``--per-dataset`` validation inputs of each of the five
datasets in ``../shared/ntire2025/val``, scored as their own "restoration".

* naive -- the organizers' way, implemented here: for each image, build every model anew
  (the three pyiqa metrics, AdaFace, the FID Inception) from the same weight files and score
  that one image; at the end, the FID against the reference statistics read from their file.
  With ``--naive-fid scipy`` that is BasicSR's ``calculate_fid`` (scipy ``sqrtm``: ~45 s on
  this CPU, see bench/fid_bench.py); by default (``fast``) it is this repository's Fréchet
  distance with the reference's square root computed anew (no cache), so that the ratio shows
  what model loading and batching alone are worth.
* cold  -- the worker's first submission: ``scoring.scorer.load_models`` (empty FID
  factorisation cache: the worst case, a new machine) + ``score_restored`` (batches of 8).
* warm  -- a second submission in the same process: ``load_models`` returns the cached models.

All three run in this one process, one after the other, on the same CPU and threads; the load
average is printed at each step since other processes may share the CPU. CPU seconds (all
threads of this process) are printed next to wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from scoring.profile import MetricTerm, ScoringProfile, get_profile  # noqa: E402

PROFILE = ScoringProfile(
    name="bench-no-maniqa",
    terms=(MetricTerm("clipiqa"), MetricTerm("musiq", divisor=100), MetricTerm("niqe", divisor=10, ceiling=10),
           MetricTerm("fid", divisor=100, ceiling=100)),
    description="ntire2025-no-qalign without MANIQA (CPU-feasible benchmark profile)",
)


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{model}; {os.cpu_count()} logical CPUs; {platform.system()} {platform.release()}; "
            f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} torch threads")


def load() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class Clock:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def choose_inputs(per_dataset: int):
    from scoring.inputs import read_landmarks, scan_inputs

    shared = Path(os.environ.get("FR_SHARED_DIR") or ROOT.parent / "shared") / "ntire2025"
    every = scan_inputs(shared / "val")
    chosen, seen = [], {}
    for image in every:
        if seen.get(image.dataset, 0) < per_dataset:
            chosen.append(image)
            seen[image.dataset] = seen.get(image.dataset, 0) + 1
    landmarks = read_landmarks(shared / "val_face.csv")
    return chosen, {image.stem: landmarks[image.stem] for image in chosen}, shared / "val"


def naive(images, landmarks, restored_dir: Path, weights: Path, fid_method: str) -> dict[str, Any]:
    """Every model built anew for every image; one image at a time; the FID at the end."""
    import torch.nn.functional as F

    from scoring.fid import FrechetReference, compute_statistics, frechet_distance_scipy, load_reference_statistics
    from scoring.identity import IdentityScorer
    from scoring.iqa import create_iqa_metric, score_batch
    from scoring.nets.adaface import load_adaface
    from scoring.nets.inception import INPUT_SIZE, FIDFeatureExtractor
    from scoring.scorer import read_rgb, to_unit_tensor
    from scoring.weights import MODEL_FILES, WeightStore

    load_wall = load_cpu = 0.0
    per_image: list[dict[str, float]] = []
    features = []
    clock = Clock()
    for image in images:
        tick = Clock()
        store = WeightStore(weights)
        store.verify(["adaface", *PROFILE.iqa_metrics, "fid"])  # as load_models does: sha256 of each file
        # MANIQA the way eval.py builds it (pyiqa's whole model), not the scorer's streamlined one.
        metrics = {name: create_iqa_metric(name, store, "cpu", streamlined=False) for name in PROFILE.iqa_metrics}
        identity = IdentityScorer(load_adaface(store.path(MODEL_FILES["adaface"][0]), "cpu"), "cpu")
        inception = FIDFeatureExtractor.from_file(store.path(MODEL_FILES["fid"][0])).eval()
        wall, cpu = tick.lap()
        load_wall += wall
        load_cpu += cpu

        lq = read_rgb(image.path)
        restored = read_rgb(restored_dir / image.relpath)
        sim = identity.similarities([(lq, restored, landmarks[image.stem].points)])[0]
        batch = to_unit_tensor(restored).unsqueeze(0)
        values = {name: score_batch(metric, batch)[0] for name, metric in metrics.items()}
        with torch.inference_mode():
            x = F.interpolate((batch - 0.5) / 0.5, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                              align_corners=False)
            features.append(inception(x).float().numpy())
        per_image.append({**values, "id_similarity": sim})
        del metrics, identity, inception
    scoring_wall, scoring_cpu = clock.lap()
    tick = Clock()
    ref_mean, ref_cov = load_reference_statistics(store.path(MODEL_FILES["fid"][1]))
    if fid_method == "scipy":
        fid = frechet_distance_scipy(*compute_statistics(np.concatenate(features)), ref_mean, ref_cov)
    else:
        fid = FrechetReference(ref_mean, ref_cov).distance_from_features(np.concatenate(features))
    fid_wall, fid_cpu = tick.lap()
    return {"wall_s": scoring_wall + fid_wall, "cpu_s": scoring_cpu + fid_cpu,
            "load_wall_s": load_wall, "load_cpu_s": load_cpu, "fid_distance_wall_s": fid_wall,
            "images": per_image, "fid": fid}


def platform_run(images, landmarks, restored_dir: Path, weights: Path, _fid_method: str) -> dict[str, Any]:
    from scoring.scorer import load_models, score_restored

    clock = Clock()
    models = load_models(weights, PROFILE, "cpu")
    report = score_restored(images, landmarks, restored_dir, PROFILE, models)
    wall, cpu = clock.lap()
    per_image = [{**r.metrics, "id_similarity": r.id_similarity} for r in report.images]
    return {"wall_s": wall, "cpu_s": cpu, "load_wall_s": models.load_seconds, "timings": report.timings,
            "images": per_image, "fid": report.overall.get("fid")}


def max_diff(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict[str, float]:
    return {key: max(abs(x[key] - y[key]) for x, y in zip(a, b)) for key in a[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-dataset", type=int, default=1, help="validation inputs per dataset (5 datasets)")
    parser.add_argument("--naive-fid", choices=["fast", "scipy"], default="fast",
                        help="the naive path's Fréchet distance (scipy: BasicSR's sqrtm, ~45 s more)")
    parser.add_argument("--json-out", help="also write the numbers here")
    parser.add_argument("--profile", help="score under this profile instead of bench-no-maniqa, e.g. "
                                          "ntire2025-no-qalign (every CPU metric, MANIQA's 20 crops included)")
    args = parser.parse_args()
    if args.profile:
        global PROFILE
        PROFILE = get_profile(args.profile)

    from tests.support.env import test_weights_dir

    weights = test_weights_dir()
    images, landmarks, restored_dir = choose_inputs(args.per_dataset)
    count = len(images)
    print(f"machine: {machine()}")
    print(f"profile {PROFILE.name}: {PROFILE.formula()} (+ AdaFace identity test); naive FID: {args.naive_fid}")
    print(f"{count} validation images ({args.per_dataset} per dataset, 512x512), weights {weights}")

    # The FID factorisation cache is emptied for the cold run (a worker on a new machine).
    cache = tempfile.TemporaryDirectory(prefix="bench-fid-cache-")
    os.environ["FR_FID_CACHE"] = cache.name
    rows: list[tuple[str, dict[str, Any], str]] = []
    with cache:
        for name, run in (("platform cold", platform_run), ("platform warm", platform_run), ("naive", naive)):
            before = load()
            print(f"\n{name} ... ({before})", flush=True)
            result = run(images, landmarks, restored_dir, weights, args.naive_fid)
            result["load_before"], result["load_after"] = before, load()
            rows.append((name, result, result["load_after"]))
            print(f"  {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s cpu; "
                  f"{count / result['wall_s']:.3f} images/s ({result['load_after']})", flush=True)

    runs = {name: result for name, result, _ in rows}
    cold, warm, slow = runs["platform cold"], runs["platform warm"], runs["naive"]
    print(f"\nresults on {machine()}\n")
    print(f"{'path':16} {'wall s':>8} {'cpu s':>8} {'images/s':>9} {'model load s':>13}  load average before -> after")
    for name, result, _ in rows:
        loading = result["load_wall_s"] if name != "platform warm" else 0.0
        print(f"{name:16} {result['wall_s']:8.1f} {result['cpu_s']:8.1f} {count / result['wall_s']:9.3f} "
              f"{loading:13.1f}  {result['load_before']} -> {result['load_after']}")
    naive_no_sqrtm = slow["wall_s"] - slow["fid_distance_wall_s"]
    print(f"\nnaive: {slow['load_wall_s']:.1f} s of {slow['wall_s']:.1f} s wall "
          f"({100 * slow['load_wall_s'] / slow['wall_s']:.0f}%) building models, "
          f"{slow['load_wall_s'] / count:.2f} s per image; "
          f"FID distance ({args.naive_fid}) {slow['fid_distance_wall_s']:.1f} s")
    print(f"platform: model load {cold['load_wall_s']:.1f} s once (cold); warm stage timings {warm['timings']}")
    print(f"ratio warm/naive (images/s): {slow['wall_s'] / warm['wall_s']:.2f}x  (goal >= 3x)")
    print(f"ratio cold/naive (images/s): {slow['wall_s'] / cold['wall_s']:.2f}x")
    print(f"ratio warm/naive without the naive FID distance step: {naive_no_sqrtm / warm['wall_s']:.2f}x; "
          f"CPU-seconds ratio warm/naive: {slow['cpu_s'] / warm['cpu_s']:.2f}x")
    diff = max_diff(slow["images"], warm["images"])
    print("same numbers? max |naive - platform| per image: "
          + ", ".join(f"{k} {v:.2e}" for k, v in diff.items())
          + f"; FID naive {slow['fid']:.6f} vs platform {warm['fid']:.6f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": machine(), "images": count, "runs": runs}, indent=2,
                                                  default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
