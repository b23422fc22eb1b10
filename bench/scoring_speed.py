"""Seconds per 512x512 image of each scoring stage on this CPU, and the peak memory of a ``score`` run.

    .venv/bin/python bench/scoring_speed.py [--images 4] [--maniqa-images 1] [--rss-per-dataset 1]
                                            [--rss-metric-option maniqa.test_sample=2] [--skip-rss]

Runs with the test weights (the real architectures with random weights, so the compute
is the real one) on real validation inputs from ../shared. Per metric: the load time,
then seconds per image for single-image calls (after one warm-up call) and for one batch
of ``--images`` images, as ``score_restored`` batches them. MANIQA runs with pyiqa's
default 20 crops on ``--maniqa-images`` image(s) (one call, no warm-up: it is slow).
The peak RSS is the ``ru_maxrss`` of a ``python -m scoring score`` subprocess
(``resource.getrusage(RUSAGE_CHILDREN)``) on ``--rss-per-dataset`` inputs per dataset,
zipped as the restored archive; it includes every model of the profile.

Wall seconds depend on what else runs on the machine; CPU seconds (all threads) are
printed alongside, and the torch thread count, so runs can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring.identity import IdentityScorer  # noqa: E402
from scoring.inputs import read_landmarks  # noqa: E402
from scoring.iqa import create_iqa_metric, score_batch  # noqa: E402
from scoring.scorer import read_rgb, to_unit_tensor  # noqa: E402
from scoring.weights import MODEL_FILES, WeightStore  # noqa: E402

T = TypeVar("T")
ROWS: list[dict[str, Any]] = []


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(value, wall seconds, CPU seconds of this process, all threads)."""
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def record(stage: str, what: str, count: int, wall: float, cpu: float) -> None:
    row = {"stage": stage, "what": what, "n": count, "wall_s": wall / count, "cpu_s": cpu / count}
    ROWS.append(row)
    print(f"  {stage:10} {what:28} n={count:<3} {row['wall_s']:9.3f} s wall {row['cpu_s']:9.3f} s cpu", flush=True)


def shared_dir() -> Path:
    return Path(os.environ.get("FR_SHARED_DIR") or ROOT.parent / "shared")


def validation_images(count: int) -> list[Path]:
    """``count`` validation inputs spread over the five datasets."""
    val = shared_dir() / "ntire2025" / "val"
    per_dataset = [sorted(d.glob("*.png")) for d in sorted(val.iterdir()) if d.is_dir()]
    chosen: list[Path] = []
    index = 0
    while len(chosen) < count:
        for paths in per_dataset:
            if index < len(paths) and len(chosen) < count:
                chosen.append(paths[index])
        index += 1
    return chosen


def bench_iqa(store: WeightStore, batch: torch.Tensor, maniqa_images: int) -> None:
    for name in ("niqe", "clipiqa", "musiq", "maniqa"):
        metric, wall, cpu = timed(lambda name=name: create_iqa_metric(name, store, "cpu"))
        record(name, "load", 1, wall, cpu)
        if name == "maniqa":
            # pyiqa's default: 20 uniform 224x224 crops per image.
            _, wall, cpu = timed(lambda metric=metric: score_batch(metric, batch[:maniqa_images]))
            record(name, f"batch of {maniqa_images}, 20 crops", maniqa_images, wall, cpu)
            continue
        score_batch(metric, batch[:1])  # warm-up (lazy initialisation, allocator)
        walls, cpus = [], []
        for i in range(batch.shape[0]):
            _, wall, cpu = timed(lambda metric=metric, i=i: score_batch(metric, batch[i:i + 1]))
            walls.append(wall)
            cpus.append(cpu)
        record(name, "single image (median)", 1, statistics.median(walls), statistics.median(cpus))
        _, wall, cpu = timed(lambda metric=metric: score_batch(metric, batch))
        record(name, f"batch of {batch.shape[0]}", batch.shape[0], wall, cpu)
        del metric


def bench_identity(store: WeightStore, paths: list[Path]) -> None:
    from scoring.nets.adaface import load_adaface

    model, wall, cpu = timed(lambda: load_adaface(store.path(MODEL_FILES["adaface"][0]), "cpu"))
    record("adaface", "load", 1, wall, cpu)
    scorer = IdentityScorer(model, "cpu")
    landmarks = read_landmarks(shared_dir() / "ntire2025" / "val_face.csv")
    pairs = []
    for path in paths:
        rgb = read_rgb(path)
        pairs.append((rgb, rgb, landmarks[path.stem].points))
    scorer.similarities(pairs[:1])  # warm-up
    _, wall, cpu = timed(lambda: scorer.similarities(pairs[:1]))
    record("adaface", "single pair", 1, wall, cpu)
    _, wall, cpu = timed(lambda: scorer.similarities(pairs))
    record("adaface", f"batch of {len(pairs)} pairs", len(pairs), wall, cpu)


def bench_fid(store: WeightStore, batch: torch.Tensor) -> None:
    from scoring.fid import FIDScorer

    network, reference = (store.path(name) for name in MODEL_FILES["fid"])
    with tempfile.TemporaryDirectory() as cache:
        fid, wall, cpu = timed(lambda: FIDScorer.from_files(network, reference, "cpu", cache_dir=cache))
        record("fid", "load, cold factorisation", 1, wall, cpu)
        _, wall, cpu = timed(lambda: FIDScorer.from_files(network, reference, "cpu", cache_dir=cache))
        record("fid", "load, cached factorisation", 1, wall, cpu)
    images = list(batch)
    fid.features(images[:1])  # warm-up
    _, wall, cpu = timed(lambda: fid.features(images[:1]))
    record("fid", "features, single image", 1, wall, cpu)
    features, wall, cpu = timed(lambda: fid.features(images))
    record("fid", f"features, batch of {len(images)}", len(images), wall, cpu)
    for count in (len(images), 100, 450):
        # Distance cost depends on the number of images only (N x N Gram form below 2048).
        rng = np.random.default_rng(count)
        stack = np.concatenate([features] * (count // len(features) + 1))[:count]
        stack = np.maximum(stack + rng.normal(0, 0.01, stack.shape).astype(np.float32), 0)
        _, wall, cpu = timed(lambda stack=stack: fid.fid(stack))
        record("fid", f"distance over {count} images", 1, wall, cpu)


def bench_score_rss(weights: Path, per_dataset: int, metric_options: list[str]) -> dict[str, Any]:
    """Peak RSS (and wall time) of ``python -m scoring score`` on a subset of the validation inputs."""
    import csv
    import shutil

    with tempfile.TemporaryDirectory(prefix="scoring-speed-") as tmp:
        work = Path(tmp)
        val = shared_dir() / "ntire2025"
        chosen: set[str] = set()
        archive = work / "restored.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for dataset in sorted(d for d in (val / "val").iterdir() if d.is_dir()):
                for png in sorted(dataset.glob("*.png"))[:per_dataset]:
                    (work / "inputs" / dataset.name).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(png, work / "inputs" / dataset.name / png.name)
                    zf.write(png, f"{dataset.name}/{png.name}")
                    chosen.add(png.stem)
        with open(val / "val_face.csv", newline="") as src, open(work / "lm.csv", "w", newline="") as out:
            reader, writer = csv.reader(src), csv.writer(out)
            writer.writerow(next(reader))
            writer.writerows(row for row in reader if row[0] in chosen)
        command = [
            sys.executable, "-m", "scoring", "score", "--inputs", str(work / "inputs"),
            "--landmarks", str(work / "lm.csv"), "--restored", str(archive), "--weights", str(weights),
            "--out", str(work / "out"), "--device", "cpu", "--json",
        ]
        for option in metric_options:
            command += ["--metric-option", option]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"score failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        summary = json.loads(done.stdout)
        return {
            "images": len(chosen),
            "metric_options": metric_options,
            "wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            # Linux reports ru_maxrss in KiB; it is the largest child's peak, i.e. this run's.
            "peak_rss_mib": after.ru_maxrss / 1024,
            "total": summary["total"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="weights directory (default: the generated test weights)")
    parser.add_argument("--images", type=int, default=4, help="images for the per-image timings (max 8 per batch)")
    parser.add_argument("--maniqa-images", type=int, default=1, help="images for MANIQA (about 80 s each)")
    parser.add_argument("--rss-per-dataset", type=int, default=1, help="inputs per dataset in the score run")
    parser.add_argument("--rss-metric-option", action="append", default=[], metavar="METRIC.KEY=VALUE",
                        help="passed to score as --metric-option (default: the profile's own options)")
    parser.add_argument("--skip-rss", action="store_true", help="skip the score subprocess")
    parser.add_argument("--only-rss", action="store_true", help="only the score subprocess")
    parser.add_argument("--json-out", help="also write the rows here as JSON")
    args = parser.parse_args()

    if args.weights:
        weights = Path(args.weights)
    else:
        from scoring.testweights import default_test_weights_dir, ensure_test_weights, shared_niqe_params

        weights = ensure_test_weights(default_test_weights_dir(), niqe_params=shared_niqe_params())
    store = WeightStore(weights)
    print(f"weights {weights} (kind {store.kind}); torch {torch.__version__}, {torch.get_num_threads()} threads,"
          f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "rows": ROWS}
    if not args.only_rss:
        paths = validation_images(args.images)
        batch = torch.stack([to_unit_tensor(read_rgb(p)) for p in paths])
        print(f"{len(paths)} validation image(s), {tuple(batch.shape[2:])} each")
        bench_iqa(store, batch, args.maniqa_images)
        bench_identity(store, paths)
        bench_fid(store, batch)
    if not args.skip_rss:
        print(f"score run: {args.rss_per_dataset} input(s) per dataset, options {args.rss_metric_option or 'default'}")
        rss = bench_score_rss(weights, args.rss_per_dataset, args.rss_metric_option)
        result["score_run"] = rss
        print(f"  {rss['images']} images: peak RSS {rss['peak_rss_mib']:.0f} MiB, {rss['wall_s']:.1f} s wall,"
              f" {rss['cpu_s']:.1f} s cpu", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
