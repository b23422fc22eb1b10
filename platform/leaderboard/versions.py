"""The version of each phase's leaderboard: raised wherever what the board shows changes.

Every change goes through ``board_changed`` in the writer's transaction, so a reader that sees the
new number also sees the new rows. The changes that save model instances (a result stored or
deleted, a team renamed, disqualified or deleted, a scored submission saved, including edits in
the admin) are caught by the receivers below; the few services that change the board with a
queryset ``update()`` (a team's selected submission, disqualification) call ``board_changed``
themselves. Anything missed still shows within ``FR_LEADERBOARD_CACHE_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F, Model, QuerySet
from django.db.models.signals import post_delete, post_save

from competitions.models import Phase
from leaderboard.models import BoardVersion
from submissions.models import Submission, SubmissionResult
from teams.models import Team


def current_version(phase_id: int) -> int:
    return BoardVersion.objects.filter(phase_id=phase_id).values_list("number", flat=True).first() or 0


def board_changed(*, phase_ids: Iterable[int] | QuerySet = (), challenge_id: int | None = None) -> None:
    """Raise the board version of these phases (or of every phase of ``challenge_id``)."""
    if challenge_id is not None:
        phase_ids = Phase.objects.filter(challenge_id=challenge_id).values_list("pk", flat=True)
    ids = sorted(set(phase_ids))  # one order for every writer: no deadlock between two of them
    if not ids:
        return
    # After the commit, so the analysis task reads the new rows; debounced there (leaderboard.services).
    transaction.on_commit(lambda: _schedule_analysis(ids))
    raised = BoardVersion.objects.filter(phase_id__in=ids).update(number=F("number") + 1)
    if raised < len(ids):  # phases created before this table (the migration fills it; this is a safety net)
        have = set(BoardVersion.objects.filter(phase_id__in=ids).values_list("phase_id", flat=True))
        BoardVersion.objects.bulk_create([BoardVersion(phase_id=i, number=1) for i in ids if i not in have],
                                         ignore_conflicts=True)


def _schedule_analysis(ids: list[int]) -> None:
    from leaderboard.services import schedule_rank_stability

    schedule_rank_stability(ids)


def _phases_of_submission(submission_id: int) -> QuerySet:
    return Submission.objects.filter(pk=submission_id).values_list("phase_id", flat=True)


def _result_changed(sender: type[Model], instance: SubmissionResult, **kwargs) -> None:
    board_changed(phase_ids=_phases_of_submission(instance.submission_id))


def _team_changed(sender: type[Model], instance: Team, created: bool = False, **kwargs) -> None:
    if not created:  # a new team has no result yet
        board_changed(challenge_id=instance.challenge_id)


def _submission_saved(sender: type[Model], instance: Submission, **kwargs) -> None:
    # Only a scored submission is on the board; uploads and running states do not change it.
    if instance.state == Submission.State.SCORED:
        board_changed(phase_ids=[instance.phase_id])


def _phase_created(sender: type[Model], instance: Phase, created: bool, **kwargs) -> None:
    if created:
        BoardVersion.objects.get_or_create(phase_id=instance.pk)


def connect() -> None:
    """Called once from the app's ``ready()``."""
    post_save.connect(_result_changed, sender=SubmissionResult, dispatch_uid="board-result-saved")
    post_delete.connect(_result_changed, sender=SubmissionResult, dispatch_uid="board-result-deleted")
    post_save.connect(_team_changed, sender=Team, dispatch_uid="board-team-saved")
    post_delete.connect(_team_changed, sender=Team, dispatch_uid="board-team-deleted")
    post_save.connect(_submission_saved, sender=Submission, dispatch_uid="board-submission-saved")
    post_delete.connect(_submission_saved, sender=Submission, dispatch_uid="board-submission-deleted")
    post_save.connect(_phase_created, sender=Phase, dispatch_uid="board-phase-created")
