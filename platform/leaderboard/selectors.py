"""Reads for the leaderboard: building the board. A fixed number of queries, whatever the number of teams.

A public board is built once per version and kept in this process (``phase_leaderboard``, over
``leaderboard.cache``). The version is the phase's counter in ``leaderboard.versions`` (raised in the
same transaction as a new result, a re-run, a disqualification, a changed selection or a renamed team)
plus the phase's own settings, so every change shows at once and checking costs one primary-key lookup.
Anything that bypasses the counter (a raw SQL edit, say) shows within ``FR_LEADERBOARD_CACHE_SECONDS``
(default 300; 0 turns the cache off). Derived things are built once per board and kept with it (``memo``):
each HTML page of ``ROWS_PER_PAGE`` rows, its charts, the JSON body, its gzip and its entity tag
(``leaderboard.http``). Numbers are written by ``leaderboard.formatting``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, Window
from django.db.models.expressions import OrderBy
from django.db.models.functions import RowNumber

from competitions.models import Phase
from competitions.permissions import can_see_board
from leaderboard.cache import boards
from leaderboard.formatting import FormattedNumbers, format4
from leaderboard.models import RankStability
from leaderboard.phase_lookup import board_phase as board_phase  # importable from here, as the API does
from leaderboard.versions import current_version
from scoring.profile import LOWER_IS_BETTER, METRIC_LABELS, NTIRE2025_DATASET_SIZES, ScoringProfile
from scoring.rank_stability import TeamBoard
from scoring.ranking import ScoredEntry, rank_entries
from scoring.results import ImageResult
from submissions.models import DatasetScore, FidFeatures, ImageScore, Submission, SubmissionResult
from submissions.selectors import counted_results, selection_order
from teams.models import Membership

__all__ = ["LOWER_IS_BETTER", "METRIC_LABELS", "counted_results"]  # re-exported for the pages and exports

T = TypeVar("T")
ROWS_PER_PAGE = 100  # of the HTML page and its charts; the JSON and CSV exports hold every row


@dataclass
class Row(FormattedNumbers):
    rank: int | None
    team: str
    team_id: int
    submission_id: int
    submitted_at: Any
    total: float
    failed_images: int
    valid: bool
    id_similarity: float
    metrics: dict[str, float]
    official_weights: bool
    baseline: bool
    shown: tuple[str, ...] = ()  # the board's metric columns, in order

    @cached_property
    def total_text(self) -> str:
        return format4(self.total)

    def to_json(self, metrics: list[str]) -> dict[str, Any]:
        return {
            "rank": self.rank, "team": self.team, "submission": self.submission_id,
            "submitted_at": self.submitted_at.isoformat(), "total": self.total,
            "failed_images": self.failed_images, "id_valid": self.valid, "id_similarity": self.id_similarity,
            "metrics": {m: self.metrics.get(m) for m in metrics}, "official_weights": self.official_weights,
            "baseline": self.baseline,
        }


@dataclass
class DatasetRow(FormattedNumbers):
    team: str
    submission_id: int
    image_count: int
    metrics: dict[str, float]
    id_similarity: float
    failed_images: int
    shown: tuple[str, ...] = ()


@dataclass
class Leaderboard:
    phase: Phase
    visible: bool
    notice: str
    metrics: list[str]
    rows: list[Row] = field(default_factory=list)
    datasets: dict[str, list[DatasetRow]] = field(default_factory=dict)
    all_official: bool = True
    profile_formula: str = ""
    # Kept in this process and shared by requests (not an organizer's preview, say, built for one request).
    cached: bool = False
    # For a page of the board (``page``): which one, and how many rows the whole board has.
    page_number: int = 0
    total_rows: int = 0
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _memo_lock: Any = field(default_factory=threading.RLock, repr=False, compare=False)

    def memo(self, name: str, compute: Callable[[], T]) -> T:
        """A value derived from this board, computed once per board (a cached board is shared by requests)."""
        with self._memo_lock:
            if name not in self._memo:
                self._memo[name] = compute()
            return self._memo[name]

    @property
    def page_count(self) -> int:
        """Pages of the whole board (a page knows the whole board's size from ``total_rows``)."""
        return max(1, -(-(self.total_rows if self.page_number else len(self.rows)) // ROWS_PER_PAGE))

    def page(self, number: int) -> Leaderboard:
        """Rows ``(number - 1) * ROWS_PER_PAGE`` on, as a board of their own (same ranks), with the
        per-dataset rows of those teams; built once per board. ``number`` is clamped to the pages there are."""
        number = min(max(1, number), self.page_count)

        def cut() -> Leaderboard:
            rows = self.rows[(number - 1) * ROWS_PER_PAGE:number * ROWS_PER_PAGE]
            shown = {row.submission_id for row in rows}
            datasets = {name: [r for r in dataset_rows if r.submission_id in shown]
                        for name, dataset_rows in self.datasets.items()}
            return replace(self, rows=rows, datasets=datasets, page_number=number, total_rows=len(self.rows),
                           _memo={}, _memo_lock=threading.RLock())

        return self.memo(f"page:{number}", cut)

    @property
    def first_row(self) -> int:
        """The position of this page's first row on the whole board (1-based)."""
        return (max(1, self.page_number) - 1) * ROWS_PER_PAGE + 1

    def page_of_team(self, team_id: int) -> tuple[Row, int] | None:
        """The team's row and the page it is on, if it is on the board."""
        for index, row in enumerate(self.rows):
            if row.team_id == team_id:
                return row, index // ROWS_PER_PAGE + 1
        return None

    def json_bytes(self) -> bytes:
        """``to_json()`` encoded as JsonResponse encodes it, once per board."""
        from django.core.serializers.json import DjangoJSONEncoder

        return self.memo("json_bytes", lambda: json.dumps(self.to_json(), cls=DjangoJSONEncoder).encode())

    def to_json(self) -> dict[str, Any]:
        return {
            "challenge": self.phase.challenge.slug, "phase": self.phase.slug, "visible": self.visible,
            "notice": self.notice, "metrics": self.metrics, "official_weights": self.all_official,
            "rows": [row.to_json(self.metrics) for row in self.rows],
            "datasets": {
                name: [{"team": r.team, "submission": r.submission_id, "image_count": r.image_count,
                        "metrics": {m: r.metrics.get(m) for m in self.metrics}, "id_similarity": r.id_similarity,
                        "failed_images": r.failed_images} for r in rows]
                for name, rows in self.datasets.items()
            },
        }


def shown_metrics(phase: Phase) -> list[str]:
    profile_metrics = [t["metric"] for t in phase.profile_snapshot.get("terms", [])]
    return [m for m in (phase.shown_metrics or profile_metrics) if m in profile_metrics] or profile_metrics


def counted_result_rows(phase: Phase) -> list[dict[str, Any]]:
    """The result that counts for each team of the phase (disqualified and memberless teams left out), in one query.

    One pass over the phase's scored results with ``row_number()`` per team, rather than one
    correlated subquery per team (``counted_results``); the same choice of result.
    """
    order = [OrderBy(F(name.lstrip("-")), descending=name.startswith("-")) for name in selection_order(phase)]
    # A team nobody is in any more leaves the board (teams.services: no one holds a row through an old team);
    # a baseline team never had members.
    has_members = Exists(Membership.objects.filter(team_id=OuterRef("submission__team_id")))
    return list(
        SubmissionResult.objects.filter(
            Q(submission__team__is_baseline=True) | Q(has_members),
            submission__phase=phase, submission__state=Submission.State.SCORED,
            submission__team__challenge=phase.challenge_id, submission__team__disqualified=False,
        )
        .annotate(pick=Window(RowNumber(), partition_by=[F("submission__team_id")], order_by=order))
        .filter(pick=1)
        .values("pk", "total", "failed_count", "valid", "id_similarity", "metrics", "official_weights",
                "submission_id", "submission__created_at", "submission__team_id", "submission__team__name",
                "submission__team__is_baseline")
    )


def cache_seconds() -> float:
    return float(settings.FR_LEADERBOARD_CACHE_SECONDS)


def board_version(phase: Phase) -> str:
    """Names what the board of ``phase`` shows: the phase's counter (``leaderboard.versions``: read with the
    phase by ``board_phase``, else one primary-key lookup) and a digest of the phase's own settings."""
    number = getattr(phase, "board_number", None)
    if number is None:
        number = current_version(phase.pk)
    settings_digest = hashlib.sha256(repr(_phase_settings(phase)).encode()).hexdigest()[:16]
    return f"{phase.pk}:{number}:{settings_digest}"


def _phase_settings(phase: Phase) -> tuple[Any, ...]:
    return (phase.pk, phase.challenge_id, phase.slug, phase.selection, phase.visibility, phase.published,
            json.dumps(phase.shown_metrics), json.dumps(phase.profile_snapshot, sort_keys=True))


def phase_leaderboard(phase: Phase, viewer=None) -> Leaderboard:
    """The board of ``phase`` as ``viewer`` may see it. A public board comes from this process's cache
    when nothing it shows has changed; callers must not modify what they get."""
    metrics = shown_metrics(phase)
    if not phase.scores_public:
        if not can_see_board(viewer, phase):
            notice = ("Scores of this phase are hidden until the organizers publish them."
                      if phase.visibility == Phase.Visibility.HIDDEN
                      else "Scores of this phase are shown to each team on its own submission pages only.")
            return Leaderboard(phase, False, notice, metrics)
        return _build(phase, metrics, "Organizer preview: these scores are not public yet.")
    ttl = cache_seconds()
    if ttl <= 0:
        return _build(phase, metrics, "")
    version = board_version(phase)
    cached = boards.get(phase.pk, version, ttl)
    if cached is not None:
        # This request's phase object (its name, dates, challenge) with the cached rows and memo.
        return replace(cached, phase=phase)
    board = _build(phase, metrics, "")
    board.cached = True
    boards.put(phase.pk, version, board)
    return board


def _build(phase: Phase, metrics: list[str], notice: str) -> Leaderboard:
    shown = tuple(metrics)
    results = counted_result_rows(phase)
    max_failed = int(phase.profile_snapshot.get("max_failed_images", 10))
    entries = [
        ScoredEntry(team=r["submission__team__name"], total=r["total"], failed_images=r["failed_count"],
                    tiebreak=(r["submission__created_at"], r["submission_id"]), ref=r)
        for r in results
    ]
    rows: list[Row] = []
    for ranked in rank_entries(entries, max_failed=max_failed):
        r = ranked.ref
        rows.append(Row(
            rank=ranked.rank, team=r["submission__team__name"], team_id=r["submission__team_id"],
            submission_id=r["submission_id"], submitted_at=r["submission__created_at"], total=r["total"],
            failed_images=r["failed_count"], valid=ranked.valid, id_similarity=r["id_similarity"],
            metrics=r["metrics"], official_weights=r["official_weights"], baseline=r["submission__team__is_baseline"],
            shown=shown,
        ))
    order = {row.submission_id: index for index, row in enumerate(rows)}
    by_result = {r["pk"]: r for r in results}
    datasets: dict[str, list[DatasetRow]] = {}
    dataset_scores = (
        DatasetScore.objects.filter(result_id__in=list(by_result)).order_by("dataset")
        .values_list("result_id", "dataset", "image_count", "metrics", "id_similarity", "failed_count")
    )
    for result_id, dataset, image_count, values, id_similarity, failed_count in dataset_scores:
        result = by_result[result_id]
        datasets.setdefault(dataset, []).append(DatasetRow(
            team=result["submission__team__name"], submission_id=result["submission_id"], image_count=image_count,
            metrics=values, id_similarity=id_similarity, failed_images=failed_count,
            shown=shown,
        ))
    known = list(NTIRE2025_DATASET_SIZES)
    datasets = {
        name: sorted(rows_, key=lambda d: order[d.submission_id])
        for name, rows_ in sorted(datasets.items(), key=lambda kv: (kv[0] not in known, known.index(kv[0])
                                                                     if kv[0] in known else 0, kv[0]))
    }
    formula = ScoringProfile.from_dict(phase.profile_snapshot).formula() if phase.profile_snapshot else ""
    return Leaderboard(phase, True, notice, metrics, rows, datasets,
                       all_official=all(r.official_weights for r in rows), profile_formula=formula)


# --------------------------------------------------------------------------- rank stability


@dataclass
class StabilityView:
    """What the "Rank stability" tab shows a viewer: the analysis of the board as it is now, if there is one.

    ``board`` is the viewer's board (its ``visible`` says whether anything may be shown at all); ``analysis`` the
    stored analysis of exactly this board version, never an older one; ``stale`` whether an analysis of an older
    board exists (it is being recomputed)."""

    board: Leaderboard
    analysis: Any = None  # leaderboard.models.RankStability
    stale: bool = False

    @property
    def data(self) -> dict[str, Any] | None:
        return self.analysis.data if self.analysis is not None else None

    @property
    def has_ranked_teams(self) -> bool:
        """Whether there is anything to analyse: a board of unranked teams only has no analysis."""
        return any(row.rank is not None for row in self.board.rows)

    def to_json(self) -> dict[str, Any]:
        phase = self.board.phase
        body: dict[str, Any] = {"challenge": phase.challenge.slug, "phase": phase.slug, "visible": self.board.visible,
                                "notice": self.board.notice, "current": self.analysis is not None}
        if self.analysis is not None:
            body.update(board=self.analysis.board, computed_at=self.analysis.created_at.isoformat(),
                        seconds=self.analysis.seconds, analysis=self.analysis.data)
        elif self.board.visible:
            body["status"] = "being computed for the current board" if self.has_ranked_teams else "no ranked team"
        return body


def rank_stability_view(phase: Phase, viewer=None) -> StabilityView:
    """The board as ``viewer`` may see it, with the analysis of its current version when one is stored. The board's
    own rule decides visibility: a board the viewer may not see has no analysis either."""
    board = phase_leaderboard(phase, viewer)
    if not board.visible:
        return StabilityView(board)
    analyses = RankStability.objects.filter(phase_id=phase.pk).order_by("-created_at", "-pk")
    current = analyses.filter(board=board_version(phase)).first()
    return StabilityView(board, current, stale=current is None and analyses.exists())


def rank_stability_max_teams() -> int:
    return int(settings.FR_RANK_STABILITY_MAX_TEAMS)


def rank_stability_inputs(phase: Phase) -> tuple[str, list[Any], list[dict[str, str]]]:
    """The board's version, its ranked teams as ``scoring.rank_stability.TeamBoard`` in board order, and the ranked
    teams left out with the reason: beyond the first ``FR_RANK_STABILITY_MAX_TEAMS``, or without per-image scores
    on the images of the board's first team (scored before the input set changed, say).

    The version is read first: rows newer than it only make the analysis look older than it is (it is then never
    shown, and the change that made them schedules another), never the other way round.
    """
    version = board_version(phase)
    ranked = [row for row in _build(phase, shown_metrics(phase), "").rows if row.rank is not None]
    limit = rank_stability_max_teams()
    kept = ranked[:limit]
    left_out = [{"team": row.team, "reason": f"beyond the first {limit} ranked teams"} for row in ranked[limit:]]
    ids = [row.submission_id for row in kept]
    images: dict[int, list[ImageResult]] = {i: [] for i in ids}
    for sid, dataset, stem, metrics, similarity, threshold in (
        ImageScore.objects.filter(result__submission_id__in=ids).order_by("dataset", "stem", "pk")
        .values_list("result__submission_id", "dataset", "stem", "metrics", "id_similarity", "id_threshold")
    ):
        images[sid].append(ImageResult(dataset, stem, metrics, similarity, threshold))
    features = {f.result.submission_id: f for f in FidFeatures.objects.filter(result__submission_id__in=ids)
                .select_related("result").only("result__submission_id", "images", "dim", "data")}
    teams = []
    expected = None
    for row in kept:
        keys = {(i.dataset, i.stem) for i in images[row.submission_id]}
        expected = keys if expected is None and keys else expected
        if not keys or keys != expected:
            left_out.append({"team": row.team, "reason": "no per-image scores on the board's test images"})
            continue
        stored = features.get(row.submission_id)
        array = None
        if stored is not None:  # in the order of this team's images
            position = {name: k for k, name in enumerate(stored.images)}
            array = stored.array()[[position[i.relpath] for i in images[row.submission_id]]]
        teams.append(TeamBoard(row.team, images[row.submission_id], fid=row.metrics.get("fid"), features=array))
    return version, teams, left_out


def unresolved_places(data: dict[str, Any] | None, top: int = 5) -> list[dict[str, Any]]:
    """For the organizers' awards: each of the first ``top`` teams with the teams ranked above it that do not beat it
    significantly (a place that the test set does not settle) and its share of resamples won."""
    if not data:
        return []
    significant = {(p["better"], p["worse"]) for p in data["pairs"] if p["significant"]}
    teams = [t["team"] for t in data["teams"]]
    return [{"rank": t["board_rank"], "team": t["team"], "win_share": t["win_share"],
             "rank_interval": t["rank_interval"],
             "tied_with": [above for above in teams[:k] if (above, t["team"]) not in significant]}
            for k, t in enumerate(data["teams"][:top])]
