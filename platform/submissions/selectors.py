"""Reads for submissions: what a team may see of its own runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery

from competitions.models import Phase
from competitions.permissions import can_view_submission, phase_scores_visible_to_team, scores_visible_to_team
from submissions.models import Submission, SubmissionEvent, SubmissionResult
from teams.models import Team

# The visibility rules live in competitions.permissions; these names stay importable from here for
# submissions/api.py (issue 12a rewrites it to ask competitions.permissions directly).
__all__ = ["can_view_submission", "phase_scores_visible_to_team", "scores_visible_to_team"]


def team_submissions(phase, team) -> QuerySet[Submission]:
    return Submission.objects.filter(phase=phase, team=team).select_related("result").order_by("-created_at")


def restored_image_name(submission_id: int, dataset: str, stem: str) -> str:
    """Where the worker keeps a restored image that failed the identity test (served only through the
    submission's image view, to those who may see the submission, never from a media URL)."""
    return f"restored/{submission_id}/{dataset}/{stem}.png"


def submission_status(submission: Submission, include_scores: bool) -> dict:
    data = {
        "id": submission.pk,
        "phase": submission.phase.slug,
        "team": submission.team.name,
        "state": submission.state,
        "final": submission.is_final,
        "created_at": submission.created_at.isoformat(),
        "finished_at": submission.finished_at.isoformat() if submission.finished_at else None,
        "progress": {"done": submission.progress_done, "total": submission.progress_total},
        "error": submission.error,
        "log": [{"at": e.at.isoformat(), "state": e.state, "message": e.message}
                for e in submission_log(submission, include_scores)],
    }
    result = getattr(submission, "result", None) if submission.state == Submission.State.SCORED else None
    if result is not None and include_scores:
        data["result"] = {
            "total": result.total, "failed_images": result.failed_count, "id_valid": result.valid,
            "id_similarity": result.id_similarity, "metrics": result.metrics, "terms": result.terms,
            "official_weights": result.official_weights, "weights": result.weights, "versions": result.versions,
            "datasets": {d.dataset: {"metrics": d.metrics, "id_similarity": d.id_similarity,
                                     "failed_images": d.failed_count, "image_count": d.image_count}
                         for d in result.datasets.all()},
        }
    return data


HIDDEN_SCORES_MESSAGE = "Scored. The scores of this phase are hidden until the organizers publish them."


def submission_log(submission: Submission, include_scores: bool) -> list[SubmissionEvent]:
    """The submission's log; without scores, the "scored" entries (which quote the total) are reworded."""
    events = list(submission.events.all())
    if not include_scores:
        for event in events:
            if event.state == Submission.State.SCORED:
                event.message = HIDDEN_SCORES_MESSAGE
    return events


@dataclass
class HistoryPoint:
    submission_id: int
    created_at: datetime
    total: float
    valid: bool
    failed_images: int
    selected: bool


@dataclass
class PhaseHistory:
    phase: Phase
    points: list[HistoryPoint] = field(default_factory=list)


def team_score_history(team, user) -> list[PhaseHistory]:
    """Per phase of the team's challenge, the totals of the team's scored runs in submission order;
    phases whose scores the viewer may not see are left out. Two queries."""
    phases = [p for p in Phase.objects.filter(challenge=team.challenge_id).select_related("challenge")
              if phase_scores_visible_to_team(p, user)]
    history = {p.pk: PhaseHistory(p) for p in phases}
    rows = (SubmissionResult.objects.filter(submission__team=team, submission__phase_id__in=list(history),
                                            submission__state=Submission.State.SCORED)
            .order_by("submission__created_at", "submission_id")
            .values_list("submission__phase_id", "submission_id", "submission__created_at", "total", "valid",
                         "failed_count", "submission__is_selected"))
    for phase_id, pk, created_at, total, valid, failed, selected in rows:
        history[phase_id].points.append(HistoryPoint(pk, created_at, total, valid, failed, selected))
    return [h for h in history.values() if h.points]


def selection_order(phase: Phase) -> list[str]:
    """How a team's scored results are ordered under the phase's selection rule: the first one counts."""
    if phase.selection == Phase.Selection.LATEST:
        return ["-submission__created_at", "-submission_id"]
    if phase.selection == Phase.Selection.SELECTED:
        return ["-submission__is_selected", "-valid", "-total", "submission__created_at"]
    return ["-valid", "-total", "submission__created_at", "submission_id"]


def counted_results(phase: Phase) -> Subquery:
    """Per team (the outer query's ``pk``), the result that counts under the phase's selection rule."""
    scored = SubmissionResult.objects.filter(
        submission__phase=phase, submission__team=OuterRef("pk"), submission__state=Submission.State.SCORED
    )
    return Subquery(scored.order_by(*selection_order(phase)).values("pk")[:1])


def counted_submission_id(phase, team, user) -> int | None:
    """The team's submission that counts in ``phase`` under its selection rule, when the viewer may know it.

    Under the "best" rule (and "selected" with no choice made) the answer follows the scores, so it is
    given only where the viewer may see them."""
    if phase.selection == Phase.Selection.SELECTED:
        chosen = Submission.objects.filter(phase=phase, team=team, is_selected=True,
                                           state=Submission.State.SCORED).values_list("pk", flat=True).first()
        if chosen is not None:
            return chosen
    if phase.selection != Phase.Selection.LATEST and not phase_scores_visible_to_team(phase, user):
        return None
    result_id = (Team.objects.filter(pk=team.pk).annotate(result_id=counted_results(phase))
                 .values_list("result_id", flat=True).first())
    if result_id is None:
        return None
    return SubmissionResult.objects.filter(pk=result_id).values_list("submission_id", flat=True).first()
