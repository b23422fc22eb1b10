"""Writes for submissions: accept an upload, enforce limits, cancel, re-run."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.files.base import File
from django.db import transaction
from django.utils import timezone

from competitions.models import Phase
from competitions.permissions import participation_refusal
from submissions import transitions
from submissions.models import Submission
from teams.models import Team

State = Submission.State
logger = logging.getLogger(__name__)


class SubmissionRefused(Exception):
    """The upload is refused; the message is shown to the participant as it is."""


@dataclass(frozen=True)
class QuotaStatus:
    used_today: int
    per_day: int
    used_total: int
    total: int
    running: int
    max_running: int
    resets_at: datetime
    # The other team this person already submitted to in this phase (a person enters a phase once).
    other_team: str | None = None

    @property
    def remaining_today(self) -> int:
        return max(0, min(self.per_day - self.used_today, self.total - self.used_total))

    def refusal(self) -> str | None:
        if self.other_team is not None:
            return (
                f"You have already submitted to this phase for the team {self.other_team}; a person submits to "
                "a phase for one team only, so that nobody holds two rows of its board."
            )
        if self.used_total >= self.total:
            return f"This phase allows {self.total} submissions in total and your team has used them all."
        if self.used_today >= self.per_day:
            return (
                f"This phase allows {self.per_day} submissions a day; your team has used them all today. "
                f"The count resets at {self.resets_at:%Y-%m-%d %H:%M} UTC."
            )
        if self.running >= self.max_running:
            return (
                f"Your team already has {self.running} submission(s) being processed (at most {self.max_running} "
                "at once). Wait for one to finish."
            )
        return None


def quota_status(phase: Phase, team: Team, user=None, now: datetime | None = None) -> QuotaStatus:
    """The one place that counts a team's submissions against a phase's limits, and, given the
    ``user`` who submits, the rule that a person enters a phase for one team only: changing teams
    gains nobody submissions or a second board row.

    Runs that failed for an infrastructure reason have ``counts_toward_quota=False``: refunded.
    """
    now = now or timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counted = Submission.objects.filter(phase=phase, team=team, counts_toward_quota=True).exclude(
        state=State.CANCELLED
    )
    return QuotaStatus(
        used_today=counted.filter(created_at__gte=day_start).count(),
        per_day=phase.max_per_day,
        used_total=counted.count(),
        total=phase.max_total,
        running=Submission.objects.filter(phase=phase, team=team, state__in=Submission.ACTIVE_STATES).count(),
        max_running=phase.max_running,
        resets_at=day_start + timedelta(days=1),
        other_team=None if user is None else (
            Submission.objects.filter(phase=phase, submitted_by=user).exclude(team=team)
            .exclude(team__is_baseline=True).exclude(state=State.CANCELLED)
            .values_list("team__name", flat=True).first()
        ),
    )


def sha256_of_upload(upload: File) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def create_submission(
    *, phase: Phase, team: Team, user, upload: File, description: str = "", enqueue: bool = True
) -> Submission:
    """Store the archive through the storage API (streamed, chunk by chunk) and queue it."""
    if team.challenge_id != phase.challenge_id:
        raise SubmissionRefused("This team belongs to another challenge.")
    refusal = participation_refusal(user, phase.challenge)  # registered, approved, current terms accepted
    if refusal:
        raise SubmissionRefused(refusal)
    if team.disqualified:
        raise SubmissionRefused("This team has been disqualified from the challenge.")
    if not phase.is_open():
        raise SubmissionRefused(f"The phase {phase.name} is not open for submissions.")
    size = upload.size or 0
    if size == 0:
        raise SubmissionRefused("The uploaded file is empty.")
    if size > phase.max_archive_bytes:
        raise SubmissionRefused(
            f"The archive is {size / 1e6:.1f} MB; this phase accepts at most {phase.max_archive_bytes / 1e6:.1f} MB."
        )
    sha256 = sha256_of_upload(upload)
    with transaction.atomic():
        # Lock the team row so two parallel uploads cannot both take the last slot.
        Team.objects.select_for_update().get(pk=team.pk)
        refusal = quota_status(phase, team, user).refusal()
        if refusal:
            raise SubmissionRefused(refusal)
        submission = Submission(
            phase=phase, team=team, submitted_by=user, description=description[:300],
            archive_size=size, archive_sha256=sha256,
        )
        submission.archive.save(f"{phase.pk}-{team.pk}.zip", upload, save=False)
        submission.save()
        transitions.log(submission.pk, f"Archive received: {size} bytes, sha256 {sha256}.")
        if enqueue:
            transaction.on_commit(lambda: enqueue_scoring(submission.pk))
    return submission


QALIGN_QUEUE = "scoring_qalign"


def scoring_queue(submission_id: int) -> str:
    """Profiles with Q-Align (8B parameters, GPU only) go to workers that declare they can run it
    by consuming the ``scoring_qalign`` queue; all others to ``scoring``."""
    snapshot = Submission.objects.filter(pk=submission_id).values_list("phase__profile_snapshot", flat=True).first()
    metrics = {term["metric"] for term in (snapshot or {}).get("terms", [])}
    return QALIGN_QUEUE if "qalign" in metrics else "scoring"


def enqueue_scoring(submission_id: int) -> bool:
    """Send the scoring task. If the broker is unreachable the submission stays "submitted"
    and the watchdog sends it again later: an upload is never lost to a broker outage."""
    from submissions.tasks import score_submission

    try:
        score_submission.apply_async((submission_id,), queue=scoring_queue(submission_id), retry=True,
                                     retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1})
    except Exception:
        logger.exception("could not queue submission %s; the watchdog will retry", submission_id)
        return False
    Submission.objects.filter(pk=submission_id).update(queued_at=timezone.now())
    return True


def cancel_submission(submission: Submission, by_user) -> bool:
    return transitions.transition(
        submission.pk, State.CANCELLED, f"Cancelled by {by_user}.", counts_toward_quota=False
    )


def rerun_submission(submission: Submission, by_user, reason: str = "") -> bool:
    """Score again from the stored archive (after new weights, say); old results are replaced."""
    from submissions.models import SubmissionResult

    with transaction.atomic():
        if not transitions.transition(
            submission.pk, State.SUBMITTED, f"Re-run requested by {by_user}. {reason}".strip(), attempts=0,
            error="",
        ):
            return False
        SubmissionResult.objects.filter(submission=submission).delete()
        transaction.on_commit(lambda: enqueue_scoring(submission.pk))
    return True


def select_submission(submission: Submission) -> None:
    from leaderboard.versions import board_changed

    with transaction.atomic():
        Submission.objects.filter(phase=submission.phase, team=submission.team).update(is_selected=False)
        Submission.objects.filter(pk=submission.pk).update(is_selected=True)
        board_changed(phase_ids=[submission.phase_id])


MAX_FACTSHEET_BYTES = 20 * 1024 * 1024


def attach_factsheet(submission: Submission, *, user, factsheet: File | None, code_url: str) -> Submission:
    """The test phase's final entry carries a factsheet (PDF) and a link to the team's code, as NTIRE required."""
    from django.core.exceptions import ValidationError
    from django.core.validators import URLValidator

    if submission.phase.kind != submission.phase.Kind.TEST:
        raise SubmissionRefused("Factsheets and code links belong to test-phase submissions.")
    if not submission.team.memberships.filter(user=user).exists():
        raise SubmissionRefused("Only the team's members can attach its factsheet.")
    if code_url:
        try:
            URLValidator(schemes=["https"])(code_url)
        except ValidationError:
            raise SubmissionRefused("The code link must be an https:// URL.") from None
    fields = ["code_url"]
    if factsheet is not None:
        if factsheet.size > MAX_FACTSHEET_BYTES:
            raise SubmissionRefused("The factsheet is larger than 20 MB.")
        head = factsheet.read(5)
        factsheet.seek(0)
        if head != b"%PDF-":
            raise SubmissionRefused("The factsheet must be a PDF file.")
        submission.factsheet.save(f"{submission.pk}-factsheet.pdf", factsheet, save=False)
        fields.append("factsheet")
    submission.code_url = code_url
    # The organizers verify what they see; a changed entry needs verifying again.
    submission.verified = False
    submission.save(update_fields=[*fields, "verified"])
    transitions.log(submission.pk, f"Factsheet and code link updated by {user}.")
    return submission
