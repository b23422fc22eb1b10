"""Reads for the leaderboard. A fixed number of queries, whatever the number of teams.

A public board is built once per version and kept in this process (``phase_leaderboard``):
the version is a fingerprint of everything the board shows, read in one aggregate query
per request (see ``board_fingerprint``), so a new result, a re-run, a disqualification
or a changed selection shows at once. Anything the fingerprint cannot see (a team renamed
in the admin, a result row edited by hand) shows within ``FR_LEADERBOARD_CACHE_SECONDS``
(default 300; 0 turns the cache off). The rendered table (template fragment cache) and the
JSON body are keyed by the same version. ``FR_LEADERBOARD_FRESH_SECONDS`` (default 0) lets a
process trust a fingerprint it read that many seconds ago instead of asking the database on
every request: a busy deployment may set 1 or 2, so that changes show within that time.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Sum, Window
from django.db.models.expressions import OrderBy
from django.db.models.functions import RowNumber

from competitions.models import Phase
from scoring.profile import NTIRE2025_DATASET_SIZES
from scoring.ranking import ScoredEntry, rank_entries
from submissions.models import DatasetScore, Submission, SubmissionResult
from teams.models import Team

METRIC_LABELS = {
    "niqe": "NIQE", "clipiqa": "CLIP-IQA", "maniqa": "MANIQA", "musiq": "MUSIQ", "qalign": "Q-Align", "fid": "FID",
}
LOWER_IS_BETTER = {"niqe", "fid"}
T = TypeVar("T")
_FOUR_PLACES = Decimal("0.0001")


def format4(value: Any) -> str:
    """The text of ``{{ value|floatformat:4 }}``, about three times faster for a finite float.

    A board of 1,000 teams shows some 50,000 numbers; the filter's generic path costs ~17 us each.
    Ordinary floats take the filter's own steps (the shortest repr as a Decimal, ROUND_HALF_UP to
    4 places, no sign on a zero, then ``number_format``); anything else goes to the filter itself.
    """
    from django.template.defaultfilters import floatformat
    from django.utils import formats

    if type(value) is not float or not (value == 0 or 1e-12 < abs(value) < 1e15):
        return str(floatformat(value, 4))  # None, NaN, infinities, extreme exponents, other types
    rounded = Decimal(repr(value)).quantize(_FOUR_PLACES, ROUND_HALF_UP)
    return formats.number_format(format(rounded if rounded else abs(rounded), "f"), 4)


@dataclass
class Row:
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

    # For the template, formatted on first use (a JSON reader never pays for it): the numbers as
    # ``floatformat:4`` writes them, the metrics in column order.
    @cached_property
    def cells(self) -> list[str]:
        return [format4(self.metrics.get(m)) for m in self.shown]

    @cached_property
    def total_text(self) -> str:
        return format4(self.total)

    @cached_property
    def id_similarity_text(self) -> str:
        return format4(self.id_similarity)

    def to_json(self, metrics: list[str]) -> dict[str, Any]:
        return {
            "rank": self.rank, "team": self.team, "submission": self.submission_id,
            "submitted_at": self.submitted_at.isoformat(), "total": self.total,
            "failed_images": self.failed_images, "id_valid": self.valid, "id_similarity": self.id_similarity,
            "metrics": {m: self.metrics.get(m) for m in metrics}, "official_weights": self.official_weights,
            "baseline": self.baseline,
        }


@dataclass
class DatasetRow:
    team: str
    submission_id: int
    image_count: int
    metrics: dict[str, float]
    id_similarity: float
    failed_images: int
    shown: tuple[str, ...] = ()

    @cached_property
    def cells(self) -> list[str]:
        return [format4(self.metrics.get(m)) for m in self.shown]

    @cached_property
    def id_similarity_text(self) -> str:
        return format4(self.id_similarity)


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
    # Names this version of the board ("" when it is not cached: an organizer's preview, say).
    cache_key: str = ""
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _memo_lock: Any = field(default_factory=threading.RLock, repr=False, compare=False)

    def memo(self, name: str, compute: Callable[[], T]) -> T:
        """A value derived from this board, computed once per board (a cached board is shared by requests)."""
        with self._memo_lock:
            if name not in self._memo:
                self._memo[name] = compute()
            return self._memo[name]

    @property
    def fragment_seconds(self) -> int:
        """How long the rendered board may be kept (template fragment cache); 0 when it is not cached."""
        return max(1, int(cache_seconds())) if self.cache_key else 0

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


def is_organizer(user, phase: Phase) -> bool:
    return bool(user and user.is_authenticated and (
        user.is_staff or phase.challenge.organizers.filter(pk=user.pk).exists()))


def shown_metrics(phase: Phase) -> list[str]:
    profile_metrics = [t["metric"] for t in phase.profile_snapshot.get("terms", [])]
    return [m for m in (phase.shown_metrics or profile_metrics) if m in profile_metrics] or profile_metrics


def selection_order(phase: Phase) -> list[str]:
    """How a team's scored results are ordered under the phase's selection rule: the first one counts."""
    if phase.selection == Phase.Selection.LATEST:
        return ["-submission__created_at", "-submission_id"]
    if phase.selection == Phase.Selection.SELECTED:
        return ["-submission__is_selected", "-valid", "-total", "submission__created_at"]
    return ["-valid", "-total", "submission__created_at", "submission_id"]


def counted_results(phase: Phase) -> Subquery:
    """Per team, the result that counts under the phase's selection rule."""
    scored = SubmissionResult.objects.filter(
        submission__phase=phase, submission__team=OuterRef("pk"), submission__state=Submission.State.SCORED
    )
    return Subquery(scored.order_by(*selection_order(phase)).values("pk")[:1])


def counted_result_rows(phase: Phase) -> list[dict[str, Any]]:
    """The result that counts for each team of the phase (disqualified teams left out), in one query.

    One pass over the phase's scored results with ``row_number()`` per team, rather than one
    correlated subquery per team (``counted_results``); the same choice of result.
    """
    order = [OrderBy(F(name.lstrip("-")), descending=name.startswith("-")) for name in selection_order(phase)]
    return list(
        SubmissionResult.objects.filter(
            submission__phase=phase, submission__state=Submission.State.SCORED,
            submission__team__challenge=phase.challenge_id, submission__team__disqualified=False,
        )
        .annotate(pick=Window(RowNumber(), partition_by=[F("submission__team_id")], order_by=order))
        .filter(pick=1)
        .values("pk", "total", "failed_count", "valid", "id_similarity", "metrics", "official_weights",
                "submission_id", "submission__created_at", "submission__team_id", "submission__team__name",
                "submission__team__is_baseline")
    )


def _setting(name: str, default: str) -> float:
    value = getattr(settings, name, None)
    return float(os.environ.get(name, default) if value is None else value)


def cache_seconds() -> float:
    return _setting("FR_LEADERBOARD_CACHE_SECONDS", "300")


def fresh_seconds() -> float:
    return _setting("FR_LEADERBOARD_FRESH_SECONDS", "0")


def board_fingerprint(phase: Phase) -> tuple[Any, ...]:
    """What the board of ``phase`` shows, summed up in one aggregate query (no row leaves the database).

    The phase's scored submissions, in one pass over the narrow submissions table: how many, the
    newest id, the latest time one became scored, the ids of the selected ones. (A result is
    written in the same transaction as its submission's move to "scored"; a re-run moves the
    submission back and deletes the result, and scoring it again gives a new finish time.)
    Then, as one-off subqueries: the ids of the challenge's disqualified and baseline teams, and
    the newest result id of the whole table (an index lookup), so that no result written on its
    own is missed. The phase's own settings come from the phase object.
    """
    scored = Q(state=Submission.State.SCORED)
    teams = Team.objects.filter(challenge=phase.challenge_id).order_by().values("challenge")
    data = Submission.objects.filter(phase=phase).aggregate(
        scored=Count("pk", filter=scored), last=Max("pk", filter=scored), finished=Max("finished_at", filter=scored),
        selected=Sum("pk", filter=scored & Q(is_selected=True)),
        disqualified=Max(Subquery(teams.annotate(v=Sum("pk", filter=Q(disqualified=True))).values("v"))),
        baseline=Max(Subquery(teams.annotate(v=Sum("pk", filter=Q(is_baseline=True))).values("v"))),
        newest_result=Max(Subquery(SubmissionResult.objects.order_by("-pk").values("pk")[:1])),
    )
    return (*_phase_settings(phase), *(f"{k}={data[k]}" for k in sorted(data)))


_boards: OrderedDict[str, tuple[Leaderboard, float]] = OrderedDict()  # version -> (board, built at)
_checked: dict[int, tuple[str, float]] = {}  # phase id -> (version, read at), for FR_LEADERBOARD_FRESH_SECONDS
_boards_lock = threading.Lock()
_BOARDS_KEPT = 16


def clear_cache() -> None:
    """Forget the boards this process keeps (tests, benchmarks)."""
    with _boards_lock:
        _boards.clear()
        _checked.clear()


def board_version(phase: Phase) -> str:
    """A digest of ``board_fingerprint``; read from the database unless FR_LEADERBOARD_FRESH_SECONDS allows
    reusing this process's last reading for the phase."""
    fresh = fresh_seconds()
    now = time.monotonic()
    if fresh > 0:
        with _boards_lock:
            seen = _checked.get(phase.pk)
        # The phase's own settings are part of the version: compare them on every request.
        if seen is not None and now - seen[1] < fresh and seen[0].endswith(_settings_digest(phase)):
            return seen[0]
    version = hashlib.sha256(repr(board_fingerprint(phase)).encode()).hexdigest()[:32] + _settings_digest(phase)
    if fresh > 0:
        with _boards_lock:
            _checked[phase.pk] = (version, now)
            if len(_checked) > 4 * _BOARDS_KEPT:
                _checked.pop(next(iter(_checked)))
    return version


def _settings_digest(phase: Phase) -> str:
    return ":" + hashlib.sha256(repr(_phase_settings(phase)).encode()).hexdigest()[:16]


def _phase_settings(phase: Phase) -> tuple[Any, ...]:
    return (phase.pk, phase.challenge_id, phase.slug, phase.selection, phase.visibility, phase.published,
            json.dumps(phase.shown_metrics), json.dumps(phase.profile_snapshot, sort_keys=True))


def phase_leaderboard(phase: Phase, viewer=None) -> Leaderboard:
    """The board of ``phase`` as ``viewer`` may see it. A public board comes from this process's cache
    when nothing it shows has changed; callers must not modify what they get."""
    metrics = shown_metrics(phase)
    if not phase.scores_public:
        organizer = is_organizer(viewer, phase)
        if not organizer:
            notice = ("Scores of this phase are hidden until the organizers publish them."
                      if phase.visibility == Phase.Visibility.HIDDEN
                      else "Scores of this phase are shown to each team on its own submission pages only.")
            return Leaderboard(phase, False, notice, metrics)
        return _build(phase, metrics, "Organizer preview: these scores are not public yet.")
    ttl = cache_seconds()
    if ttl <= 0:
        return _build(phase, metrics, "")
    version = board_version(phase)
    with _boards_lock:
        cached = _boards.get(version)
        # The age limit bounds how long a change the fingerprint cannot see stays hidden.
        if cached is not None and time.monotonic() - cached[1] < ttl:
            _boards.move_to_end(version)
            # This request's phase object (its name, dates, challenge) with the cached rows and memo.
            return replace(cached[0], phase=phase)
    board = _build(phase, metrics, "")
    # Unique to this build, so that the rendered fragment never outlives the board it shows.
    board.cache_key = f"leaderboard:{phase.pk}:{version}:{time.time_ns()}"
    with _boards_lock:
        _boards[version] = (board, time.monotonic())
        _boards.move_to_end(version)
        while len(_boards) > _BOARDS_KEPT:
            _boards.popitem(last=False)
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
    from scoring.profile import ScoringProfile

    formula = ScoringProfile.from_dict(phase.profile_snapshot).formula() if phase.profile_snapshot else ""
    return Leaderboard(phase, True, notice, metrics, rows, datasets,
                       all_official=all(r.official_weights for r in rows), profile_formula=formula)
