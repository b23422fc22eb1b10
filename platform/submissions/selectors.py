"""Reads for submissions: what a team may see of its own runs."""

from __future__ import annotations

from django.db.models import QuerySet

from submissions.models import Submission
from teams.models import Membership


def team_submissions(phase, team) -> QuerySet[Submission]:
    return Submission.objects.filter(phase=phase, team=team).select_related("result").order_by("-created_at")


def can_view_submission(user, submission: Submission) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff or submission.phase.challenge.organizers.filter(pk=user.pk).exists():
        return True
    return Membership.objects.filter(team_id=submission.team_id, user=user).exists()


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
        "log": [{"at": e.at.isoformat(), "state": e.state, "message": e.message} for e in submission.events.all()],
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


def scores_visible_to_team(submission: Submission, user) -> bool:
    """Teams see their own scores unless the phase hides scores from everyone until publication."""
    phase = submission.phase
    if phase.visibility != phase.Visibility.HIDDEN or phase.published:
        return True
    return bool(user.is_staff or phase.challenge.organizers.filter(pk=user.pk).exists())
