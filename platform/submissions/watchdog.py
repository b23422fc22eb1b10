"""Finds runs whose worker went silent or that ran past their limit; requeues or fails them.

Nothing stays in a non-final state forever: after ``FR_MAX_ATTEMPTS`` tries a run fails
with a clear message and gives the team its slot back. Direct uploads abandoned past their
URLs' lifetime are aborted in the bucket and forgotten (``uploads.abort_abandoned``).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from submissions import transitions
from submissions.models import Submission
from submissions.services import enqueue_scoring
from submissions.uploads import abort_abandoned

State = Submission.State


def sweep(now=None) -> dict[str, int]:
    now = now or timezone.now()
    silent_since = now - timedelta(seconds=settings.FR_HEARTBEAT_TIMEOUT)
    too_old = now - timedelta(seconds=settings.FR_SCORING_TIME_LIMIT + 120)
    stuck = Submission.objects.filter(state__in=(State.VALIDATING, State.SCORING)).filter(
        Q(heartbeat_at__lt=silent_since) | Q(heartbeat_at__isnull=True) | Q(started_at__lt=too_old)
    )
    requeued = failed = 0
    requeued_ids: list[int] = []
    for submission in stuck.only("pk", "attempts", "state", "worker"):
        if submission.attempts < settings.FR_MAX_ATTEMPTS:
            if transitions.transition(
                submission.pk, State.SUBMITTED,
                f"The worker {submission.worker or '?'} stopped responding; the submission is queued again"
                f" (attempt {submission.attempts + 1} of {settings.FR_MAX_ATTEMPTS}).",
                sources=(submission.state,),
            ):
                enqueue_scoring(submission.pk)
                requeued_ids.append(submission.pk)
                requeued += 1
        elif transitions.transition(
            submission.pk, State.FAILED,
            f"Scoring did not finish after {submission.attempts} attempts. This is a problem on our side;"
            " the run does not count against your team's quota, and the organizers have been told.",
            sources=(submission.state,), counts_toward_quota=False, error="watchdog: attempts exhausted",
        ):
            failed += 1
    # A message lost with a broker's restart leaves a submission "submitted" with nobody on it.
    # (Not the ones just requeued above: they were sent again already.)
    # A long queue is not a lost one: each waiting submission is sent again at most once per
    # FR_RESEND_AFTER, so duplicates stay few (and each is a no-op for the idempotent task).
    resend_before = now - timedelta(seconds=settings.FR_RESEND_AFTER)
    lost = Submission.objects.filter(
        Q(queued_at__lt=resend_before) | Q(queued_at__isnull=True, created_at__lt=resend_before),
        state=State.SUBMITTED, heartbeat_at__isnull=True,
    ).exclude(pk__in=requeued_ids)
    resent = 0
    for submission in lost.only("pk"):
        enqueue_scoring(submission.pk)
        resent += 1
    return {"requeued": requeued, "failed": failed, "resent": resent, "uploads_aborted": abort_abandoned(now)}
