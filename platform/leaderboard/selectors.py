"""Reads for the leaderboard. A fixed number of queries, whatever the number of teams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import OuterRef, Subquery

from competitions.models import Phase
from scoring.profile import NTIRE2025_DATASET_SIZES
from scoring.ranking import ScoredEntry, rank_entries
from submissions.models import DatasetScore, Submission, SubmissionResult
from teams.models import Team

METRIC_LABELS = {
    "niqe": "NIQE", "clipiqa": "CLIP-IQA", "maniqa": "MANIQA", "musiq": "MUSIQ", "qalign": "Q-Align", "fid": "FID",
}
LOWER_IS_BETTER = {"niqe", "fid"}


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


def counted_results(phase: Phase) -> Subquery:
    """Per team, the result that counts under the phase's selection rule."""
    scored = SubmissionResult.objects.filter(
        submission__phase=phase, submission__team=OuterRef("pk"), submission__state=Submission.State.SCORED
    )
    if phase.selection == Phase.Selection.LATEST:
        ordered = scored.order_by("-submission__created_at", "-submission_id")
    elif phase.selection == Phase.Selection.SELECTED:
        ordered = scored.order_by("-submission__is_selected", "-valid", "-total", "submission__created_at")
    else:
        ordered = scored.order_by("-valid", "-total", "submission__created_at", "submission_id")
    return Subquery(ordered.values("pk")[:1])


def phase_leaderboard(phase: Phase, viewer=None) -> Leaderboard:
    metrics = shown_metrics(phase)
    organizer = is_organizer(viewer, phase)
    if not (phase.scores_public or organizer):
        notice = ("Scores of this phase are hidden until the organizers publish them."
                  if phase.visibility == Phase.Visibility.HIDDEN
                  else "Scores of this phase are shown to each team on its own submission pages only.")
        return Leaderboard(phase, False, notice, metrics)
    notice = "" if phase.scores_public else "Organizer preview: these scores are not public yet."

    team_results = dict(
        Team.objects.filter(challenge=phase.challenge_id, disqualified=False)
        .annotate(result_id=Subquery(counted_results(phase)))
        .filter(result_id__isnull=False)
        .values_list("result_id", "pk")
    )
    results = (
        SubmissionResult.objects.filter(pk__in=list(team_results))
        .select_related("submission__team")
        .only("pk", "total", "failed_count", "valid", "id_similarity", "metrics", "official_weights",
              "submission__id", "submission__created_at", "submission__team__name", "submission__team__is_baseline")
    )
    max_failed = int(phase.profile_snapshot.get("max_failed_images", 10))
    entries = [
        ScoredEntry(team=r.submission.team.name, total=r.total, failed_images=r.failed_count,
                    tiebreak=(r.submission.created_at, r.submission.pk), ref=r)
        for r in results
    ]
    rows: list[Row] = []
    for ranked in rank_entries(entries, max_failed=max_failed):
        r = ranked.ref
        rows.append(Row(
            rank=ranked.rank, team=r.submission.team.name, team_id=r.submission.team_id, submission_id=r.submission.pk,
            submitted_at=r.submission.created_at, total=r.total, failed_images=r.failed_count, valid=ranked.valid,
            id_similarity=r.id_similarity, metrics=r.metrics, official_weights=r.official_weights,
            baseline=r.submission.team.is_baseline,
        ))
    order = {row.submission_id: index for index, row in enumerate(rows)}
    by_result = {r.pk: r for r in results}
    datasets: dict[str, list[DatasetRow]] = {}
    for ds in DatasetScore.objects.filter(result_id__in=list(team_results)).order_by("dataset"):
        result = by_result[ds.result_id]
        datasets.setdefault(ds.dataset, []).append(DatasetRow(
            team=result.submission.team.name, submission_id=result.submission.pk, image_count=ds.image_count,
            metrics=ds.metrics, id_similarity=ds.id_similarity, failed_images=ds.failed_count,
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
