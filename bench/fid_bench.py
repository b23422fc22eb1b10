"""Time FID's Fréchet distance: scipy's sqrtm (BasicSR / NTIRE) against scoring.fid's fast forms.

    /tmp/venv-try/bin/python bench/fid_bench.py [--images 450] [--reference-samples 4000]

Random Inception-like 2048-d features stand in for the FFHQ reference and a submission;
the timings depend only on the sizes. All methods run in this one process on this CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.fid import FrechetReference, compute_statistics, frechet_distance_scipy  # noqa: E402

DIM = 2048
T = TypeVar("T")


def inception_like_features(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(1234).standard_normal((DIM, DIM)) / np.sqrt(DIM)
    latent = rng.standard_normal((count, DIM)) @ mixing
    return np.maximum(latent + rng.uniform(0.0, 0.5, DIM), 0.0).astype(np.float32)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def best_of(repeats: int, fn: Callable[[], T]) -> tuple[T, float]:
    runs = [timed(fn) for _ in range(repeats)]
    return runs[-1][0], min(seconds for _, seconds in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=450, help="submission images (NTIRE test set: 450)")
    parser.add_argument("--reference-samples", type=int, default=4000, help="samples behind the reference")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each cached call; the best is shown")
    args = parser.parse_args()

    print(f"numpy {np.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    ref_features = inception_like_features(args.reference_samples, seed=1)
    features = inception_like_features(args.images, seed=2)
    ref_mean, ref_cov = compute_statistics(ref_features)
    mu, sigma = compute_statistics(features)

    rows: list[tuple[str, float, float]] = []
    baseline, scipy_s = timed(lambda: frechet_distance_scipy(mu, sigma, ref_mean, ref_cov))
    rows.append(("scipy sqrtm (BasicSR calculate_fid)", scipy_s, baseline))

    def first_call() -> float:
        return FrechetReference(ref_mean, ref_cov).distance(mu, sigma)

    value, seconds = timed(first_call)
    rows.append(("fast, first call incl. eigh of the reference", seconds, value))

    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "inception_FFHQ_512.pth"
        torch.save({"name": "bench", "size": 512, "mean": ref_mean, "cov": ref_cov}, stats_path)
        cache_dir = Path(tmp) / "cache"
        _, seconds = timed(lambda: FrechetReference.from_file(stats_path, cache_dir=cache_dir))
        rows.append(("from_file, cold (hash + eigh + write cache)", seconds, float("nan")))
        reference, seconds = timed(lambda: FrechetReference.from_file(stats_path, cache_dir=cache_dir))
        rows.append(("from_file, warm (hash + read cache)", seconds, float("nan")))

    value, seconds = best_of(args.repeats, lambda: reference.distance(mu, sigma))
    rows.append(("fast, cached: distance(mu, sigma)", seconds, value))
    value, seconds = best_of(args.repeats, lambda: reference.distance_from_features(features))
    rows.append((f"fast, cached: Gram form from {args.images} features", seconds, value))
    stats_and_gram = best_of(args.repeats, lambda: reference.distance(*compute_statistics(features)))[1]
    rows.append(("  (for scale: np.cov + distance(mu, sigma))", stats_and_gram, float("nan")))

    print(f"\n{args.images} submission features, reference from {args.reference_samples}, D={DIM}\n")
    print(f"{'method':50} {'seconds':>9} {'speed-up':>9} {'FID':>18} {'|diff| vs scipy':>16}")
    for name, seconds, value in rows:
        speedup = scipy_s / seconds
        diff = "" if np.isnan(value) else f"{abs(value - baseline):16.2e}"
        shown = "" if np.isnan(value) else f"{value:18.9f}"
        print(f"{name:50} {seconds:9.3f} {speedup:8.1f}x {shown:>18} {diff:>16}")


if __name__ == "__main__":
    main()
