"""Every change of a submission's state happens here, and nowhere else.

A transition is a conditional UPDATE (``WHERE state IN allowed sources``), so two
workers, a watchdog and an organizer racing on one submission cannot both win; the
loser gets ``False`` and does nothing. Each successful transition writes a log line.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from submissions.models import Submission, SubmissionEvent

State = Submission.State

# target state -> states it may be reached from
ALLOWED_SOURCES: dict[str, tuple[str, ...]] = {
    State.VALIDATING: (State.SUBMITTED,),
    State.SCORING: (State.VALIDATING,),
    State.SCORED: (State.SCORING,),
    State.REJECTED: (State.VALIDATING,),
    State.FAILED: (State.SUBMITTED, State.VALIDATING, State.SCORING),
    State.CANCELLED: (State.SUBMITTED, State.VALIDATING, State.SCORING),
    # Requeue (watchdog, worker lost) and organizer re-runs start over from "submitted".
    State.SUBMITTED: (State.VALIDATING, State.SCORING, State.SCORED, State.FAILED, State.REJECTED),
}


class TransitionRefused(Exception):
    pass


def transition(
    submission_id: int,
    to_state: str,
    message: str,
    *,
    sources: tuple[str, ...] | None = None,
    **fields: Any,
) -> bool:
    """Move a submission to ``to_state`` if it is in one of ``sources`` (default: all allowed).

    Returns True when this call made the change. Extra ``fields`` are written in the same UPDATE.
    """
    allowed = ALLOWED_SOURCES[to_state]
    sources = tuple(s for s in (sources or allowed) if s in allowed)
    now = timezone.now()
    updates: dict[str, Any] = {"state": to_state, **fields}
    if to_state in (State.VALIDATING,):
        updates.setdefault("started_at", now)
        updates.setdefault("heartbeat_at", now)
    if to_state in Submission.FINAL_STATES:
        updates.setdefault("finished_at", now)
    if to_state == State.SUBMITTED:
        updates.update(finished_at=None, heartbeat_at=None, worker="", progress_done=0)
    with transaction.atomic():
        changed = Submission.objects.filter(pk=submission_id, state__in=sources).update(**updates)
        if changed:
            SubmissionEvent.objects.create(submission_id=submission_id, state=to_state, message=message)
    return bool(changed)


def log(submission_id: int, message: str) -> None:
    """A log line that does not change the state."""
    state = Submission.objects.filter(pk=submission_id).values_list("state", flat=True).first() or ""
    SubmissionEvent.objects.create(submission_id=submission_id, state=state, message=message)


def heartbeat(submission_id: int, **fields: Any) -> bool:
    """Mark a running submission alive (and record progress); False if it is no longer running."""
    return bool(
        Submission.objects.filter(pk=submission_id, state__in=(State.VALIDATING, State.SCORING)).update(
            heartbeat_at=timezone.now(), **fields
        )
    )
