"""The version of each phase's leaderboard: raised wherever what the board shows changes.

Every change goes through ``board_changed`` in the writer's transaction, so a reader that sees the
new number also sees the new rows. The changes that save model instances (a result stored or
deleted, a team renamed, disqualified or deleted, a scored submission saved, including edits in
the admin) are caught by the receivers below; the few services that change the board with a
queryset ``update()`` send ``competitions.signals.boards_changed`` (a team's selected submission, a team
emptied) or, from the organizers' app above, call ``board_changed`` (disqualification). Anything missed
still shows within ``FR_LEADERBOARD_CACHE_SECONDS``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Model, QuerySet
from django.db.models.signals import post_delete, post_save

from competitions.models import Phase
from competitions.signals import boards_changed
from leaderboard.models import BoardVersion
from submissions.models import Submission, SubmissionResult
from teams.models import Team

logger = logging.getLogger(__name__)
# Sent by name: the task module imports leaderboard.services in its body, so importing it here would close a cycle.
RANK_STABILITY_TASK = "leaderboard.tasks.rank_stability"


def current_version(phase_id: int) -> int:
    return BoardVersion.objects.filter(phase_id=phase_id).values_list("number", flat=True).first() or 0


def board_changed(*, phase_ids: Iterable[int] | QuerySet = (), challenge_id: int | None = None) -> None:
    """Raise the board version of these phases (or of every phase of ``challenge_id``)."""
    if challenge_id is not None:
        phase_ids = Phase.objects.filter(challenge_id=challenge_id).values_list("pk", flat=True)
    ids = sorted(set(phase_ids))  # one order for every writer: no deadlock between two of them
    if not ids:
        return
    # After the commit, so the analysis task reads the new rows; debounced (schedule_rank_stability).
    transaction.on_commit(lambda: schedule_rank_stability(ids))
    raised = BoardVersion.objects.filter(phase_id__in=ids).update(number=F("number") + 1)
    if raised < len(ids):  # phases created before this table (the migration fills it; this is a safety net)
        have = set(BoardVersion.objects.filter(phase_id__in=ids).values_list("phase_id", flat=True))
        BoardVersion.objects.bulk_create([BoardVersion(phase_id=i, number=1) for i in ids if i not in have],
                                         ignore_conflicts=True)


def scheduled_key(phase_id: int) -> str:
    return f"rank-stability-scheduled:{phase_id}"


def schedule_rank_stability(phase_ids: Iterable[int]) -> list[int]:
    """Send the analysis task for each phase that has none on its way; returns the phases it was sent for.

    Best effort: the analysis is derived data, so a broker that is down must not fail the change that called
    this (the tab schedules it again when it finds no current analysis)."""
    countdown = int(settings.FR_RANK_STABILITY_DEBOUNCE)
    sent = []
    for phase_id in phase_ids:
        key = scheduled_key(phase_id)
        if not cache.add(key, True, timeout=max(1, countdown)):
            continue  # one is already waiting: it will read the board as it is when it runs
        try:
            current_app.signature(RANK_STABILITY_TASK).apply_async((phase_id,), countdown=countdown)
        except Exception:
            cache.delete(key)
            logger.warning("could not schedule the rank-stability analysis of phase %s", phase_id, exc_info=True)
            continue
        sent.append(phase_id)
    return sent


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


def _boards_changed(sender: Any, phase_ids: Iterable[int] = (), challenge_id: int | None = None, **kwargs) -> None:
    board_changed(phase_ids=phase_ids, challenge_id=challenge_id)


def connect() -> None:
    """Called once from the app's ``ready()``."""
    boards_changed.connect(_boards_changed, dispatch_uid="board-changed-by-update")
    post_save.connect(_result_changed, sender=SubmissionResult, dispatch_uid="board-result-saved")
    post_delete.connect(_result_changed, sender=SubmissionResult, dispatch_uid="board-result-deleted")
    post_save.connect(_team_changed, sender=Team, dispatch_uid="board-team-saved")
    post_delete.connect(_team_changed, sender=Team, dispatch_uid="board-team-deleted")
    post_save.connect(_submission_saved, sender=Submission, dispatch_uid="board-submission-saved")
    post_delete.connect(_submission_saved, sender=Submission, dispatch_uid="board-submission-deleted")
    post_save.connect(_phase_created, sender=Phase, dispatch_uid="board-phase-created")
