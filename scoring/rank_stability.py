"""How stable is a board's ranking? A bootstrap over test images and pairwise significance tests.

After Wiesenfarth et al. (challengeR, Sci. Rep. 2021) and Maier-Hein et al. (Nat. Commun. 2018):

* Bootstrap: ``resamples`` draws of the test images with replacement, stratified by source dataset (every
  dataset keeps its image count), from one seeded generator. Each draw recomputes every team's total as the
  profile does: the per-image metrics averaged over the drawn images (every dataset keeps its count, so the
  All row, the count-weighted mean of the dataset means, is the mean over the drawn images), FID recomputed
  from the submission's Inception features with the draw's weights (``scoring.fid.ResampledFID``), then the
  profile's terms with their clamps (``scoring.aggregate.weighted_terms``), and ranks the teams
  (``scoring.ranking.rank_entries``, ties in board order).
* A team without stored features keeps its board FID in every draw: it is listed in ``fid_held_fixed``.
* The teams are the board's ranked (valid) teams; validity is the board's, held fixed (a draw may repeat an
  image that failed the identity test, but the rule is about the test set itself).
* Pairwise: a one-sided paired Wilcoxon signed-rank test (scipy) for every ordered pair of teams, on the
  per-image contributions to the total: each image's metric terms without the clamp (``MetricTerm.linear``)
  plus the team's FID term, a set statistic shared by all its images, so the contributions' mean is the total
  wherever no clamp is active (``clamped`` lists the teams where one is). The FID term thus shifts every
  paired difference by the same amount; its sampling spread shows in the bootstrap only. The p-values of all
  ordered pairs are Holm-adjusted together.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from scoring import csv_cells
from scoring.aggregate import dataset_order, weighted_terms, weighted_total
from scoring.profile import ScoringProfile
from scoring.ranking import ScoredEntry, rank_entries
from scoring.results import ImageResult

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 2025
DEFAULT_ALPHA = 0.05
CSV_HEADER = ("board_rank", "team", "board_total", "median_rank", "rank_low", "rank_high", "total_low",
              "total_high", "win_share", "fid_held_fixed", "clamped")


@dataclass
class TeamBoard:
    """One ranked team of the board: its per-image results, its board FID and, when stored, its features."""

    team: str
    images: list[ImageResult]
    fid: float | None = None  # the board's FID over all images (used as is when features is None)
    features: np.ndarray | None = None  # (N, 2048) Inception features, in the order of ``images``


@dataclass
class TeamStability:
    team: str
    board_rank: int
    board_total: float  # the total recomputed on the full test set (the identity resample)
    rank_counts: list[int]  # rank_counts[k]: resamples in which the team is ranked k + 1
    median_rank: float
    rank_interval: tuple[float, float]  # 2.5% and 97.5% quantiles of the rank
    total_interval: tuple[float, float]
    win_share: float  # share of resamples in which the team ranks first
    fid_held_fixed: bool
    clamped: list[str]  # terms whose clamp is active on the full test set


@dataclass
class PairTest:
    better: str  # the alternative: ``better``'s contributions exceed ``worse``'s
    worse: str
    statistic: float
    p_value: float
    p_holm: float
    significant: bool


@dataclass
class RankStability:
    profile: str
    resamples: int
    seed: int
    alpha: float
    datasets: dict[str, int]  # images per dataset, kept by every resample
    teams: list[TeamStability]
    kendall_tau: dict[str, float | None]  # summary of tau(full ranking, resample ranking) over resamples
    pairs: list[PairTest] = field(default_factory=list)
    fid: str = "none"  # "bootstrapped", "partly held fixed", "held fixed" or "none" (no FID term)
    fid_held_fixed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["wins"] = self.significance_matrix()
        return data

    def significance_matrix(self) -> list[list[bool]]:
        """``m[i][j]``: team i (board order) beats team j significantly."""
        index = {t.team: i for i, t in enumerate(self.teams)}
        matrix = [[False] * len(self.teams) for _ in self.teams]
        for pair in self.pairs:
            matrix[index[pair.better]][index[pair.worse]] = pair.significant
        return matrix

    def to_csv(self) -> str:
        """The intervals table, one row per team in board order."""
        return intervals_csv(asdict(self)["teams"])


def intervals_csv(teams: Sequence[dict[str, Any]]) -> str:
    """The intervals table of ``RankStability.to_dict()["teams"]`` (so a stored analysis gives the same file)."""
    out = io.StringIO()
    writer = csv_cells.writer(out)  # team names are participants' text: no spreadsheet formulas
    writer.writerow(CSV_HEADER)
    for t in teams:
        writer.writerow([t["board_rank"], t["team"], repr(t["board_total"]), t["median_rank"], *t["rank_interval"],
                         *(repr(v) for v in t["total_interval"]), t["win_share"], int(t["fid_held_fixed"]),
                         " ".join(t["clamped"])])
    return out.getvalue()


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the k-th smallest p times (m - k + 1), made monotone, capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p_values[i]))
        adjusted[i] = running
    return adjusted


def stratified_weights(datasets: Sequence[str], resamples: int, seed: int) -> np.ndarray:
    """(resamples, N) draw counts: each dataset's images drawn with replacement, as many as it has.

    ``datasets[i]`` is image i's dataset; the images must be in a fixed order (``image_order``) so that one
    seed gives one set of draws on every machine.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(datasets)
    weights = np.zeros((resamples, len(labels)))
    for name in dataset_order(labels.tolist()):
        members = np.flatnonzero(labels == name)
        draws = rng.integers(0, len(members), size=(resamples, len(members)))
        for row in range(resamples):
            weights[row, members] = np.bincount(draws[row], minlength=len(members))
    return weights


def image_order(images: Sequence[ImageResult]) -> list[tuple[str, str]]:
    """Datasets in the report's order, stems sorted within each: the order draws are made in."""
    keys = {(i.dataset, i.stem) for i in images}
    rank = {name: k for k, name in enumerate(dataset_order(d for d, _ in keys))}
    return sorted(keys, key=lambda key: (rank[key[0]], key[1]))


def per_image_contributions(profile: ScoringProfile, images: Sequence[ImageResult], fid: float | None) -> np.ndarray:
    """Each image's share of the total: its metric terms unclamped, plus the team's FID term."""
    fid_term = 0.0
    for term in profile.terms:
        if term.metric == "fid":
            fid_term = term.contribution(float(fid))  # type: ignore[arg-type]
    iqa_terms = [t for t in profile.terms if t.metric != "fid"]
    return np.array([math.fsum(t.linear(float(i.metrics[t.metric])) for t in iqa_terms) + fid_term
                     for i in images])


def _quantiles(values: np.ndarray, method: Literal["linear", "inverted_cdf"] = "linear") -> tuple[float, float]:
    low, high = np.quantile(values, [0.025, 0.975], method=method)
    return float(low), float(high)


def _wilcoxon_greater(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import wilcoxon

    if np.all(a == b):  # no non-zero difference: nothing to test (scipy would warn and return NaN)
        return 0.0, 1.0
    result = wilcoxon(a, b, alternative="greater")
    return float(result.statistic), float(result.pvalue)


def _tau_summary(taus: list[float]) -> dict[str, float | None]:
    if not taus:
        return {"mean": None, "median": None, "low": None, "high": None, "min": None, "share_identical": None}
    values = np.asarray(taus)
    low, high = _quantiles(values)
    return {"mean": float(values.mean()), "median": float(np.median(values)), "low": low, "high": high,
            "min": float(values.min()), "share_identical": float(np.mean(values == 1.0))}


def analyse(profile: ScoringProfile, teams: Sequence[TeamBoard], *, resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED, alpha: float = DEFAULT_ALPHA, reference: Any = None) -> RankStability:
    """The rank-stability analysis of ``teams``, given in board order (ties keep that order).

    ``reference`` is the ``scoring.fid.FrechetReference`` (needed when a team has features).
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if not teams:
        raise ValueError("a rank-stability analysis needs at least one ranked team")
    order = image_order(teams[0].images)
    datasets = [d for d, _ in order]
    weights = stratified_weights(datasets, resamples, seed)
    everything = np.ones((1, len(order)))
    metrics = profile.iqa_metrics
    totals = np.empty((len(teams), resamples))
    full = np.empty(len(teams))
    held_fixed: list[str] = []
    contributions: list[np.ndarray] = []
    clamped: list[list[str]] = []
    for row, team in enumerate(teams):
        by_key = {(i.dataset, i.stem): index for index, i in enumerate(team.images)}
        if set(by_key) != set(order) or len(by_key) != len(team.images):
            raise ValueError(f"team {team.team!r} was scored on other images than {teams[0].team!r}")
        positions = [by_key[key] for key in order]
        images = [team.images[p] for p in positions]
        values = np.array([[float(i.metrics[m]) for m in metrics] for i in images]).reshape(len(images), -1)
        means = weights @ values / len(images)
        full_means = everything @ values / len(images)
        fids: np.ndarray | None = None
        full_fid: float | None = None
        if profile.uses_fid:
            if team.features is not None and reference is not None:
                from scoring.fid import ResampledFID

                resampled = ResampledFID(reference, np.asarray(team.features)[positions])
                fids = resampled.distances(weights)
                full_fid = float(resampled.distances(everything)[0])
            elif team.fid is not None:
                held_fixed.append(team.team)
                fids = np.full(resamples, float(team.fid))
                full_fid = float(team.fid)
            else:
                raise ValueError(f"team {team.team!r} has neither an FID nor Inception features")

        def total_of(mean_row: np.ndarray, fid: float | None) -> float:
            overall = {m: float(v) for m, v in zip(metrics, mean_row)}
            if fid is not None:
                overall["fid"] = fid
            return weighted_total(weighted_terms(profile, overall))

        for b in range(resamples):
            totals[row, b] = total_of(means[b], None if fids is None else float(fids[b]))
        full[row] = total_of(full_means[0], full_fid)
        overall = {m: float(v) for m, v in zip(metrics, full_means[0])}
        if full_fid is not None:
            overall["fid"] = full_fid
        clamped.append([t.metric for t in profile.terms if t.clamped(overall[t.metric])])
        contributions.append(per_image_contributions(profile, images, full_fid))

    def ranking(values: np.ndarray) -> np.ndarray:
        entries = [ScoredEntry(team=t.team, total=float(v), failed_images=0, tiebreak=(k,), ref=k)
                   for k, (t, v) in enumerate(zip(teams, values))]
        ranks = np.empty(len(teams), dtype=int)
        for entry in rank_entries(entries, max_failed=0):
            ranks[entry.ref] = entry.rank
        return ranks

    board_ranks = ranking(full)
    ranks = np.empty((len(teams), resamples), dtype=int)
    taus: list[float] = []
    from scipy.stats import kendalltau

    for b in range(resamples):
        ranks[:, b] = ranking(totals[:, b])
        if len(teams) > 1:
            taus.append(float(kendalltau(board_ranks, ranks[:, b]).statistic))

    stability = []
    for row, team in enumerate(teams):
        counts = np.bincount(ranks[row] - 1, minlength=len(teams))
        stability.append(TeamStability(
            team=team.team, board_rank=int(board_ranks[row]), board_total=float(full[row]),
            rank_counts=[int(c) for c in counts], median_rank=float(np.median(ranks[row])),
            rank_interval=_quantiles(ranks[row].astype(float), method="inverted_cdf"),
            total_interval=_quantiles(totals[row]), win_share=float(np.mean(ranks[row] == 1)),
            fid_held_fixed=team.team in held_fixed, clamped=clamped[row],
        ))

    tests: list[tuple[int, int, float, float]] = []
    for i in range(len(teams)):
        for j in range(len(teams)):
            if i != j:
                tests.append((i, j, *_wilcoxon_greater(contributions[i], contributions[j])))
    adjusted = holm([p for *_, p in tests])
    pairs = [PairTest(teams[i].team, teams[j].team, statistic, p, p_adj, p_adj < alpha)
             for (i, j, statistic, p), p_adj in zip(tests, adjusted)]

    if not profile.uses_fid:
        fid_mode = "none"
    elif not held_fixed:
        fid_mode = "bootstrapped"
    else:
        fid_mode = "held fixed" if len(held_fixed) == len(teams) else "partly held fixed"
    per_dataset = {name: datasets.count(name) for name in dataset_order(datasets)}
    stability.sort(key=lambda t: t.board_rank)
    return RankStability(profile=profile.name, resamples=resamples, seed=seed, alpha=alpha, datasets=per_dataset,
                         teams=stability, kendall_tau=_tau_summary(taus), pairs=pairs, fid=fid_mode,
                         fid_held_fixed=held_fixed)



def board_from_folder(folder: Path, profile: ScoringProfile,
                      reference: Any = None) -> tuple[list[TeamBoard], list[str]]:
    """Teams from eval.py's files in ``folder``: ``<team>.csv`` (per image) each, with ``<team>.npy`` (float32
    Inception features in the CSV's row order; needs ``reference``) or ``<team>_total.csv`` (its All row's FID,
    then held fixed) when the profile has FID. Returns the ranked teams in board order (equal totals by name)
    and the names of the unranked ones (too many identity failures)."""
    from scoring.aggregate import aggregate
    from scoring.report_csv import ALL_ROW, read_images_csv, read_total_csv

    files = sorted(p for p in folder.glob("*.csv") if not p.name.endswith("_total.csv"))
    if not files:
        raise ValueError(f"{folder}: no per-image CSV files (<team>.csv)")
    entries, boards = [], {}
    for path in files:
        name = path.stem
        images = read_images_csv(path, profile)
        features, fid = None, None
        if profile.uses_fid:
            if (folder / f"{name}.npy").is_file():
                if reference is None:
                    raise ValueError(f"{name}.npy: FID from features needs the reference statistics (--reference)")
                features = np.load(folder / f"{name}.npy", allow_pickle=False)
                fid = reference.distance_from_features(features)  # as the scorer computes the board's FID
            elif (folder / f"{name}_total.csv").is_file():
                fid = read_total_csv(folder / f"{name}_total.csv").get(ALL_ROW, {}).get("FID")
            if fid is None:
                raise ValueError(f"{name}: the profile has FID: give {name}.npy or {name}_total.csv")
        boards[name] = TeamBoard(name, images, fid=fid, features=features)
        summary = aggregate(profile, images, fid)
        entries.append(ScoredEntry(name, summary.total, summary.failed_count, tiebreak=(name,), ref=name))
    ranked = rank_entries(entries, max_failed=profile.max_failed_images)
    return [boards[e.ref] for e in ranked if e.rank is not None], [e.ref for e in ranked if e.rank is None]


def run_rank_stability_cli(folder: Path, profile_name: str, resamples: int, seed: int, alpha: float,
                           reference_path: Path | None, as_json: bool, csv_out: Path | None = None) -> int:
    """``python -m scoring rank-stability``: the analysis of a folder of eval.py per-image CSV files."""
    import json
    import sys

    from scoring.profile import get_profile

    try:
        profile = get_profile(profile_name)
        reference = None
        if reference_path is not None:
            from scoring.fid import FrechetReference

            reference = FrechetReference.from_file(reference_path)
        teams, unranked = board_from_folder(Path(folder), profile, reference)
        result = analyse(profile, teams, resamples=resamples, seed=seed, alpha=alpha, reference=reference)
    except (OSError, ValueError, KeyError, csv.Error) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1
    if csv_out is not None:
        Path(csv_out).write_text(result.to_csv(), encoding="utf-8")
    if as_json:
        print(json.dumps({**result.to_dict(), "unranked": unranked}, indent=1))
        return 0
    print(f"{len(result.teams)} ranked teams, {resamples} resamples (seed {seed}), FID {result.fid}")
    print(f"{'rank':>4}  {'team':20} {'total':>8}  {'95% total':17}  {'median':>6}  {'95% rank':8}  {'won':>6}")
    for t in result.teams:
        print(f"{t.board_rank:>4}  {t.team:20} {t.board_total:8.4f}  "
              f"{t.total_interval[0]:.4f}-{t.total_interval[1]:.4f}  {t.median_rank:6g}  "
              f"{t.rank_interval[0]:g}-{t.rank_interval[1]:g}{'':5} {100 * t.win_share:5.1f}%")
    for t in result.teams:
        beaten = [p.worse for p in result.pairs if p.better == t.team and p.significant]
        print(f"{t.team} beats significantly: {', '.join(beaten) or 'nobody'}")
    if unranked:
        print(f"not ranked (too many identity failures): {', '.join(unranked)}")
    return 0
