"""The rank-stability analysis on synthetic boards: bootstrap, FID under resample weights, Wilcoxon, Holm."""

from __future__ import annotations

import csv
import io
import itertools

import numpy as np
import pytest
import scipy.stats

from scoring.aggregate import aggregate
from scoring.fid import FrechetReference, ResampledFID, compute_statistics
from scoring.profile import get_profile
from scoring.rank_stability import TeamBoard, analyse, holm, image_order, stratified_weights
from scoring.results import ImageResult

DEV = get_profile("ntire2025-dev")  # clipiqa + musiq/100
NO_QALIGN = get_profile("ntire2025-no-qalign")  # + maniqa + max(0, (10-niqe)/10) + max(0, (100-fid)/100)
DATASETS = {"CelebA": 12, "LFW-Test": 9, "Wider-Test": 7}


def base_images(seed: int = 0) -> list[tuple[str, str, dict[str, float]]]:
    """Per image: dataset, stem and a difficulty shared by every team."""
    rng = np.random.default_rng(seed)
    out = []
    for dataset, count in DATASETS.items():
        for k in range(count):
            out.append((dataset, f"{dataset[:3].lower()}_{k:03d}", {
                "clipiqa": float(rng.uniform(0.4, 0.8)), "musiq": float(rng.uniform(50, 75)),
                "maniqa": float(rng.uniform(0.4, 0.7)), "niqe": float(rng.uniform(3, 7))}))
    return out


def team(name: str, shift: float = 0.0, noise: float = 0.01, seed: int = 1, fid: float | None = None,
         features: np.ndarray | None = None, shuffle: bool = False) -> TeamBoard:
    rng = np.random.default_rng(seed)
    images = [ImageResult(d, s, {m: v + shift * (100 if m == "musiq" else 1) * (-1 if m == "niqe" else 1)
                                 + float(rng.normal(0, noise)) * (100 if m == "musiq" else 1)
                                 for m, v in base.items()}, 0.9, 0.5)
              for d, s, base in base_images()]
    if shuffle:  # the analysis must not depend on the order the images arrive in
        order = rng.permutation(len(images))
        images = [images[i] for i in order]
        features = None if features is None else features[order]
    return TeamBoard(name, images, fid=fid, features=features)


def features_like(count: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(99).standard_normal((dim, dim)) / np.sqrt(dim)
    return np.maximum(rng.standard_normal((count, dim)) @ mixing + 0.3 + shift, 0).astype(np.float32)


@pytest.fixture(scope="module")
def reference() -> FrechetReference:
    return FrechetReference(*compute_statistics(features_like(400, 32, seed=5)))


def intervals_overlap(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def test_two_teams_differing_only_by_noise_overlap_and_differ_not_significantly():
    result = analyse(DEV, [team("A", seed=1), team("B", seed=2)], resamples=400, seed=3)
    a, b = result.teams
    assert intervals_overlap(a.total_interval, b.total_interval)
    assert intervals_overlap(a.rank_interval, b.rank_interval) and a.rank_interval == (1.0, 2.0)
    assert 0.05 < a.win_share < 0.95 and a.win_share + b.win_share == pytest.approx(1.0)
    assert not any(p.significant for p in result.pairs)
    assert len(result.pairs) == 2 and result.fid == "none"


def test_a_team_better_on_every_image_wins_all_resamples_and_beats_everyone():
    teams = [team("Best", shift=0.05, seed=1), team("B", seed=2), team("C", seed=3), team("D", seed=4)]
    result = analyse(DEV, teams, resamples=300, seed=1)
    best = result.teams[0]
    assert best.team == "Best" and best.board_rank == 1
    assert best.win_share >= 0.99 and best.rank_interval == (1.0, 1.0) and best.median_rank == 1
    assert best.rank_counts[0] == sum(best.rank_counts) == 300
    beaten = {p.worse for p in result.pairs if p.better == "Best" and p.significant}
    assert beaten == {"B", "C", "D"}
    assert not any(p.significant for p in result.pairs if p.worse == "Best")
    assert result.significance_matrix()[0] == [False, True, True, True]
    assert result.kendall_tau["min"] is not None and -1 <= result.kendall_tau["min"] <= 1


def test_a_board_of_one_team_is_handled():
    result = analyse(DEV, [team("Alone")], resamples=50, seed=0)
    (alone,) = result.teams
    assert alone.win_share == 1.0 and alone.rank_counts == [50] and alone.rank_interval == (1.0, 1.0)
    assert result.pairs == [] and result.kendall_tau["mean"] is None and result.significance_matrix() == [[False]]
    assert alone.total_interval[0] <= alone.board_total <= alone.total_interval[1]
    assert "Alone" in result.to_csv()


def test_no_team_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        analyse(DEV, [])


def test_wilcoxon_p_values_equal_scipy_on_the_per_image_contributions():
    teams = [team("A", shift=0.004, seed=1), team("B", seed=2), team("C", shift=-0.003, seed=3, shuffle=True)]
    # ntire2025-no-qalign needs an FID: give every team one (held fixed, a per-team constant).
    for k, t in enumerate(teams):
        t.fid = 40.0 + k
    result = analyse(NO_QALIGN, teams, resamples=20, seed=0)
    assert result.fid == "held fixed" and result.fid_held_fixed == ["A", "B", "C"]

    def contributions(t: TeamBoard) -> np.ndarray:  # written out from the report's formula
        rows = {(i.dataset, i.stem): i.metrics for i in t.images}
        return np.array([rows[key]["clipiqa"] + rows[key]["maniqa"] + rows[key]["musiq"] / 100
                         + (10 - rows[key]["niqe"]) / 10 + max(0.0, (100 - t.fid) / 100)
                         for key in image_order(teams[0].images)])

    by_name = {t.team: contributions(t) for t in teams}
    assert len(result.pairs) == 6
    for pair in result.pairs:
        expected = scipy.stats.wilcoxon(by_name[pair.better], by_name[pair.worse], alternative="greater")
        assert pair.p_value == expected.pvalue and pair.statistic == expected.statistic
    assert [p.p_holm for p in result.pairs] == holm([p.p_value for p in result.pairs])


def reference_holm(p: list[float]) -> list[float]:
    """Holm (1979) from its definition: reject H_(k) while p_(k) <= alpha / (m - k + 1); the adjusted p-value
    of H_i is the smallest alpha at which the procedure rejects it."""
    m = len(p)
    ordered = sorted(p)
    out = []
    for value in p:
        k = max(j for j, q in enumerate(ordered) if q == value)  # its last position among ties
        out.append(min(1.0, max((m - j) * ordered[j] for j in range(k + 1))))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_holm_equals_a_reference_implementation(seed):
    rng = np.random.default_rng(seed)
    p = [float(v) for v in rng.uniform(0, 0.2, 12)] + [0.01, 0.01, 1.0, 0.0]
    rng.shuffle(p)
    assert holm(p) == pytest.approx(reference_holm(p), abs=1e-15)
    assert holm([]) == []


def test_stratified_resamples_keep_every_datasets_count_and_depend_only_on_the_seed():
    labels = [d for d, count in DATASETS.items() for _ in range(count)]
    weights = stratified_weights(labels, 200, seed=7)
    assert weights.shape == (200, len(labels))
    for dataset, count in DATASETS.items():
        columns = [k for k, label in enumerate(labels) if label == dataset]
        assert (weights[:, columns].sum(axis=1) == count).all()
    assert np.array_equal(weights, stratified_weights(labels, 200, seed=7))
    assert not np.array_equal(weights, stratified_weights(labels, 200, seed=8))


def test_same_seed_gives_the_same_analysis_and_image_order_does_not_matter(reference):
    n = sum(DATASETS.values())
    make = lambda shuffle: [team(f"T{k}", shift=0.001 * k, seed=k, fid=None, shuffle=shuffle,  # noqa: E731
                                 features=features_like(n, 32, seed=20 + k)) for k in range(3)]
    first = analyse(NO_QALIGN, make(False), resamples=60, seed=11, reference=reference).to_dict()
    assert first == analyse(NO_QALIGN, make(False), resamples=60, seed=11, reference=reference).to_dict()
    shuffled = analyse(NO_QALIGN, make(True), resamples=60, seed=11, reference=reference).to_dict()
    for a, b in zip(first["teams"], shuffled["teams"]):
        assert a["rank_counts"] == b["rank_counts"] and a["total_interval"] == pytest.approx(b["total_interval"])
    assert analyse(NO_QALIGN, make(False), resamples=60, seed=12, reference=reference).to_dict() != first
    assert first["fid"] == "bootstrapped"


def test_identity_resample_gives_the_board_totals_to_1e_9_fid_included(reference):
    n = sum(DATASETS.values())
    teams = [team(f"T{k}", shift=0.002 * k, seed=k, features=features_like(n, 32, seed=30 + k, shift=0.05 * k),
                  shuffle=k == 1) for k in range(3)]
    result = analyse(NO_QALIGN, teams, resamples=5, seed=0, reference=reference)
    for t in teams:
        board = aggregate(NO_QALIGN, t.images, reference.distance_from_features(t.features))
        analysed = next(s for s in result.teams if s.team == t.team)
        assert abs(analysed.board_total - board.total) <= 1e-9, t.team


def test_resampled_fid_equals_fid_of_the_copied_features(reference):
    features = features_like(40, 32, seed=3)
    rng = np.random.default_rng(0)
    draws = rng.integers(0, 40, size=(6, 40))
    weights = np.stack([np.bincount(d, minlength=40) for d in draws])
    got = ResampledFID(reference, features).distances(weights)
    expected = [reference.distance_from_features(features[d]) for d in draws]
    # Both float64 from the same float32 features: rounding only, measured at most 1.1e-14 relative over 20 seeds
    # (AMD EPYC, OpenBLAS/MKL); the bounds leave a factor of 100 or more for other CPUs and BLAS builds.
    assert got == pytest.approx(expected, rel=1e-10)
    assert ResampledFID(reference, features).distances(np.ones(40))[0] == pytest.approx(
        reference.distance_from_features(features), rel=1e-12)


def test_teams_scored_on_different_images_are_refused():
    a, b = team("A"), team("B")
    b.images = b.images[1:]
    with pytest.raises(ValueError, match="other images"):
        analyse(DEV, [a, b], resamples=5)


def test_csv_has_a_row_per_team_in_board_order():
    result = analyse(DEV, [team("B", seed=2), team("A", shift=0.05, seed=1)], resamples=30, seed=0)
    lines = result.to_csv().splitlines()
    assert lines[0].startswith("board_rank,team") and [line.split(",")[1] for line in lines[1:]] == ["A", "B"]
    assert list(itertools.chain.from_iterable(result.significance_matrix())).count(True) == 1


def test_csv_neutralises_a_formula_like_team_name():
    # As every CSV the platform writes (scoring/csv_cells.py): a team name is participants' text.
    result = analyse(DEV, [team("=cmd|' /C calc'!A0", seed=2), team("A", shift=0.05, seed=1)], resamples=10, seed=0)
    rows = list(csv.reader(io.StringIO(result.to_csv())))
    assert [row[1] for row in rows[1:]] == ["A", "'=cmd|' /C calc'!A0"]


def write_eval_files(folder, t: TeamBoard, profile, fid: float | None) -> None:
    """eval.py's two CSV files of a team, written by the scorer's own writers."""
    from scoring.report_csv import write_images_csv, write_total_csv
    from scoring.results import ScoreReport

    summary = aggregate(profile, t.images, fid)
    report = ScoreReport(profile=profile.to_dict(), images=t.images, datasets=summary.datasets,
                         overall=summary.overall, id_similarity=summary.id_similarity,
                         failed_count=summary.failed_count, terms=summary.terms, total=summary.total,
                         valid=summary.valid, weights={}, official_weights=False, versions={}, device="cpu")
    write_images_csv(folder / f"{t.team}.csv", report)
    write_total_csv(folder / f"{t.team}_total.csv", report)


def test_command_line_gives_the_same_numbers_from_eval_csv_files(tmp_path):
    import json
    import subprocess
    import sys

    from tests.support.env import ROOT

    teams = [team("Beta", seed=2, fid=41.5), team("Alpha", shift=0.004, seed=1, fid=43.0),
             team("Gamma", shift=-0.002, seed=3, fid=40.0, shuffle=True)]
    for t in teams:
        write_eval_files(tmp_path, t, NO_QALIGN, t.fid)
    out = subprocess.run([sys.executable, "-m", "scoring", "rank-stability", str(tmp_path), "--profile",
                          "ntire2025-no-qalign", "--resamples", "80", "--seed", "4", "--json", "--csv",
                          str(tmp_path / "intervals.out")], cwd=ROOT, capture_output=True, text=True, check=True)
    offline = json.loads(out.stdout)
    by_total = sorted(teams, key=lambda t: -aggregate(NO_QALIGN, t.images, t.fid).total)
    direct = analyse(NO_QALIGN, by_total, resamples=80, seed=4)
    assert offline == {**json.loads(json.dumps(direct.to_dict())), "unranked": []}
    assert (tmp_path / "intervals.out").read_bytes().decode() == direct.to_csv()
    assert offline["fid"] == "held fixed"


def test_command_line_says_what_is_wrong_with_a_folder(tmp_path):
    import subprocess
    import sys

    from tests.support.env import ROOT

    out = subprocess.run([sys.executable, "-m", "scoring", "rank-stability", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "no per-image CSV files" in out.stderr
