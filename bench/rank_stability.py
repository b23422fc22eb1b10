"""Time the rank-stability analysis, and run it on a board built from NTIRE 2025's Table 1.

    .venv/bin/python bench/rank_stability.py --teams 10 --resamples 1000          # the timing
    .venv/bin/python bench/rank_stability.py --table1 ../shared/reference/ntire2025-table1.csv  # worked example

Timing: ``--teams`` teams on NTIRE's 450 test images (its five datasets and their sizes), the full
``ntire2025`` profile, each team with random Inception-like 2048-d features against a random reference, so
FID is recomputed in every resample (``scoring.fid.ResampledFID``); the sizes are the real ones, the values
are not. ``--hold-fid`` times the same board with FID held at each team's value.

Table 1: each ranked team's published means with per-image values around them (an image difficulty shared by
every team plus a team's own noise, then shifted so each team's means are the published ones exactly); FID is
a set statistic with no per-image values in the table, so it is held at the published value.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import load_average, machine  # noqa: E402
from scoring.fid import FrechetReference, compute_statistics  # noqa: E402
from scoring.profile import NTIRE2025_DATASET_SIZES, get_profile  # noqa: E402
from scoring.rank_stability import TeamBoard, analyse  # noqa: E402
from scoring.results import ImageResult  # noqa: E402

DIM = 2048
# Per-image spread of each metric (an image's difficulty, shared by all teams) and of a team's own noise.
SPREAD = {"niqe": 0.8, "clipiqa": 0.05, "maniqa": 0.05, "musiq": 3.0, "qalign": 0.3}
TEAM_NOISE = 0.5  # a team's own per-image noise, as a share of SPREAD


def test_images() -> list[tuple[str, str]]:
    return [(d, f"{d.split('-')[0].lower()}_{k:03d}") for d, n in NTIRE2025_DATASET_SIZES.items() for k in range(n)]


def per_image(means: dict[str, float], seed: int, difficulty: dict[str, np.ndarray]) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    columns = {}
    for metric, spread in SPREAD.items():
        values = difficulty[metric] + rng.normal(0, spread * TEAM_NOISE, len(difficulty[metric]))
        columns[metric] = values - values.mean() + means[metric]  # the team's published mean, exactly
    return [{m: float(columns[m][k]) for m in columns} for k in range(len(difficulty["niqe"]))]


def shared_difficulty(count: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {m: rng.normal(0, s, count) for m, s in SPREAD.items()}


def features_like(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(1234).standard_normal((DIM, DIM)) / np.sqrt(DIM)
    return np.maximum(rng.standard_normal((count, DIM)) @ mixing + rng.uniform(0, 0.5, DIM), 0).astype(np.float32)


def timing(args: argparse.Namespace) -> None:
    images = test_images()
    difficulty = shared_difficulty(len(images))
    reference = FrechetReference(*compute_statistics(features_like(4000, seed=1)))
    teams = []
    for k in range(args.teams):
        means = {"niqe": 4.5, "clipiqa": 0.90 - 0.005 * k, "maniqa": 0.68, "musiq": 76.0, "qalign": 4.3}
        rows = per_image(means, seed=100 + k, difficulty=difficulty)
        feats = None if args.hold_fid else features_like(len(images), seed=200 + k)
        teams.append(TeamBoard(f"team-{k:02d}", [ImageResult(d, s, rows[i], 0.9, 0.5)
                                                 for i, (d, s) in enumerate(images)], fid=55.0, features=feats))
    print(machine())
    print(load_average(), "(before)")
    started, cpu = time.perf_counter(), time.process_time()
    result = analyse(get_profile("ntire2025"), teams, resamples=args.resamples, seed=1, reference=reference)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{args.teams} teams x {len(images)} images x {args.resamples} resamples, FID {result.fid}: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU; {load_average()} (after)")


def table1(args: argparse.Namespace) -> None:
    with open(args.table1, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["id_validation"].strip() == "pass"]
    rows.sort(key=lambda r: int(r["rank"]))
    images = test_images()
    difficulty = shared_difficulty(len(images))
    teams = []
    for k, row in enumerate(rows):
        means = {m: float(row[m]) for m in SPREAD}
        values = per_image(means, seed=300 + k, difficulty=difficulty)
        teams.append(TeamBoard(row["team"], [ImageResult(d, s, values[i], 0.9, 0.5)
                                             for i, (d, s) in enumerate(images)], fid=float(row["fid"])))
    started = time.perf_counter()
    result = analyse(get_profile("ntire2025"), teams, resamples=args.resamples, seed=2025)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return
    print(f"{len(teams)} teams, {result.resamples} resamples (seed {result.seed}), FID {result.fid}; {seconds:.1f} s")
    print("| board rank | team | published total | total | 95% interval of the total | median rank "
          "| 95% rank interval | won |")
    print("|---:|---|---:|---:|---|---:|---|---:|")
    published = {r["team"]: r["total_score"] for r in rows}
    for t in result.teams:
        print(f"| {t.board_rank} | {t.team} | {published[t.team]} | {t.board_total:.4f} | "
              f"{t.total_interval[0]:.4f}–{t.total_interval[1]:.4f} | {t.median_rank:g} | "
              f"{t.rank_interval[0]:g}–{t.rank_interval[1]:g} | {100 * t.win_share:.1f}% |")
    tau = result.kendall_tau
    print(f"\nKendall's tau: mean {tau['mean']:.3f}, median {tau['median']:.3f},"
          f" 95% {tau['low']:.3f}–{tau['high']:.3f}")
    print("\nSignificant wins (Holm-adjusted one-sided Wilcoxon, alpha 0.05):")
    for t in result.teams:
        beaten = [p.worse for p in result.pairs if p.better == t.team and p.significant]
        print(f"- {t.team}: {', '.join(beaten) if beaten else 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--hold-fid", action="store_true")
    parser.add_argument("--table1", help="NTIRE 2025 Table 1 CSV: run the worked example instead of the timing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    table1(args) if args.table1 else timing(args)


if __name__ == "__main__":
    main()
