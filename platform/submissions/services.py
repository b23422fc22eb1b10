"""Writes for submissions: accept an upload, enforce limits, cancel, re-run.

``create_submission`` is the one way a submission comes to exist (web form, one-request API, finished direct
upload, organizer baseline) and ``check_submission`` holds every guard it runs; ``rerun_submission`` is the one
way a submission is scored again (organizer page, re-run all, ``manage.py rescore``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from competitions.models import Phase
from competitions.permissions import participation_refusal
from competitions.signals import boards_changed
from competitions.storage import remove_stored, sha256_of_upload
from submissions import transitions
from submissions.models import Submission, SubmissionResult
from submissions.refusals import Refusal, SubmissionRefused
from teams.models import Membership, Team
from teams.services import team_of

State = Submission.State
logger = logging.getLogger(__name__)


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

    def refusal(self) -> SubmissionRefused | None:
        """Why one more submission is refused now (the first rule it breaks), or None."""
        if self.other_team is not None:
            return SubmissionRefused(Refusal.ONE_TEAM_PER_PHASE, other_team=self.other_team)
        if self.used_total >= self.total:
            return SubmissionRefused(Refusal.TOTAL_QUOTA, total=self.total)
        if self.used_today >= self.per_day:
            return SubmissionRefused(Refusal.DAILY_QUOTA, per_day=self.per_day, resets_at=self.resets_at)
        if self.running >= self.max_running:
            return SubmissionRefused(Refusal.RUNNING_AT_ONCE, running=self.running, max_running=self.max_running)
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


@dataclass(frozen=True)
class StoredArchive:
    """An archive already in storage under ``name`` (a finished direct upload): nothing to copy."""

    name: str
    size: int


def check_submission(*, phase: Phase, team: Team, user, size: int, baseline: bool = False) -> None:
    """Every rule a new submission must pass, in one place; raises SubmissionRefused.

    A baseline (an organizer's reference row on a baseline team) skips what only binds participants: the
    phase's dates (organizers add baselines before it opens or after it closes), the membership check (a
    baseline team has no members) and the quota, including one team per person per phase (a baseline
    team is no participant's). The challenge, the disqualification and the archive's size still apply.
    """
    if baseline and not team.is_baseline:
        raise ValueError(f"{team} is not a baseline team")
    if team.challenge_id != phase.challenge_id:
        raise SubmissionRefused(Refusal.WRONG_CHALLENGE)
    if team.disqualified:
        raise SubmissionRefused(Refusal.DISQUALIFIED)
    if not baseline:
        if not phase.is_open():
            raise SubmissionRefused(Refusal.PHASE_CLOSED, phase=phase.name)
        reason = participation_refusal(user, phase.challenge)  # registered, approved, current terms accepted
        if reason:
            raise SubmissionRefused(Refusal.NOT_PARTICIPANT, reason=reason)
        if not Membership.objects.filter(team=team, user=user).exists():
            raise SubmissionRefused(Refusal.NOT_A_MEMBER, team=team.name)
    if size <= 0:
        raise SubmissionRefused(Refusal.EMPTY)
    if size > phase.max_archive_bytes:
        raise SubmissionRefused(Refusal.TOO_LARGE, size_mb=size / 1e6, limit_mb=phase.max_archive_bytes / 1e6)
    if not baseline:
        refusal = quota_status(phase, team, user).refusal()
        if refusal is not None:
            raise refusal


def create_submission(
    *, phase: Phase, team: Team, user, upload: File | StoredArchive, description: str = "",
    baseline: bool = False, enqueue: bool = True,
) -> Submission:
    """Check every rule (check_submission), store the archive and queue it for scoring.

    ``upload`` is a file (streamed to storage chunk by chunk) or a StoredArchive already in storage. The
    rules run again under a lock on the team's row, so two parallel uploads cannot both take the last slot;
    a refused upload leaves nothing stored by this call (a StoredArchive is the caller's to delete)."""
    stored = isinstance(upload, StoredArchive)
    size = upload.size or 0
    check_submission(phase=phase, team=team, user=user, size=size, baseline=baseline)
    sha256 = "" if isinstance(upload, StoredArchive) else sha256_of_upload(upload)
    with transaction.atomic():
        locked = Team.objects.select_for_update().get(pk=team.pk)
        check_submission(phase=phase, team=locked, user=user, size=size, baseline=baseline)
        submission = Submission(
            phase=phase, team=team, submitted_by=user, description=description[:300],
            archive_size=size, archive_sha256=sha256,
        )
        if isinstance(upload, StoredArchive):
            submission.archive.name = upload.name
        else:
            submission.archive.save(f"{phase.pk}-{team.pk}.zip", upload, save=False)
        try:
            submission.save()
            if baseline:
                what = f"Baseline archive added by {user}: {size} bytes, sha256 {sha256}."
            elif stored:
                what = f"Archive received directly in storage: {size} bytes."
            else:
                what = f"Archive received: {size} bytes, sha256 {sha256}."
            transitions.log(submission.pk, what)
        except BaseException:
            if not stored:  # the row is rolled back: so is the archive it would have pointed to
                remove_stored([submission.archive.name])
            raise
        if enqueue:
            transaction.on_commit(lambda: enqueue_scoring(submission.pk))
    return submission


def submit_archive(*, phase: Phase, user, archive: File | None, description: str = "",
                   too_large: bool = False) -> Submission:
    """A participant's upload in one request (the web form, the API): for the user's team in the challenge.
    ``too_large``: the upload handler stopped the body (submissions.upload_limits), nothing was received."""
    if too_large:
        raise SubmissionRefused(Refusal.TOO_LARGE_WHILE_RECEIVED, limit_mb=phase.max_archive_bytes / 1e6)
    team = team_of(user, phase.challenge)
    if team is None:
        raise SubmissionRefused(Refusal.NO_TEAM)
    if archive is None:
        raise SubmissionRefused(Refusal.NO_ARCHIVE)
    return create_submission(phase=phase, team=team, user=user, upload=archive, description=description)


QALIGN_QUEUE = "scoring_qalign"
# Sent by name: submissions.tasks imports the pipeline and the watchdog, which imports this module.
SCORING_TASK = "submissions.tasks.score_submission"


def scoring_queue(submission_id: int) -> str:
    """Profiles with Q-Align (8B parameters, GPU only) go to workers that declare they can run it
    by consuming the ``scoring_qalign`` queue; all others to ``scoring``."""
    snapshot = Submission.objects.filter(pk=submission_id).values_list("phase__profile_snapshot", flat=True).first()
    metrics = {term["metric"] for term in (snapshot or {}).get("terms", [])}
    return QALIGN_QUEUE if "qalign" in metrics else "scoring"


def enqueue_scoring(submission_id: int) -> bool:
    """Send the scoring task. If the broker is unreachable the submission stays "submitted"
    and the watchdog sends it again later: an upload is never lost to a broker outage."""
    try:
        current_app.signature(SCORING_TASK).apply_async(
            (submission_id,), queue=scoring_queue(submission_id), retry=True,
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


# What may be scored again: a finished run that reached the scorer or failed on the way. A rejected archive is
# not (the archive check depends on the archive, not on the weights or the scorer a re-run is for, so it would
# be rejected again), a cancelled one was withdrawn by its team, and a waiting or running one is still in the
# pipeline: re-running it would score it twice.
RERUNNABLE_STATES: tuple[str, ...] = (State.SCORED, State.FAILED)


def rerun_submission(submission: Submission | int, by_user, reason: str = "", *,
                     message: str | None = None, enqueue: bool = True) -> bool:
    """Score again from the stored archive (after new weights, say); its old result is deleted with the state
    change and the run's counters start over. False when it is not in RERUNNABLE_STATES (any more)."""
    pk = submission if isinstance(submission, int) else submission.pk
    text = message or f"Re-run requested by {by_user}. {reason}".strip()
    with transaction.atomic():
        if not transitions.transition(pk, State.SUBMITTED, text, sources=RERUNNABLE_STATES, attempts=0, error=""):
            return False
        # A result row would make the new run's result a duplicate: it goes with the state change.
        SubmissionResult.objects.filter(submission_id=pk).delete()
        if enqueue:
            transaction.on_commit(lambda: enqueue_scoring(pk))
    return True


def rerun_refusal(submission: Submission) -> SubmissionRefused:
    return SubmissionRefused(Refusal.NOT_RERUNNABLE, pk=submission.pk, state=submission.get_state_display())


def rerun_phase(phase: Phase, by_user, reason: str = "", *, states: tuple[str, ...] = RERUNNABLE_STATES,
                message: str | None = None, dry_run: bool = False) -> list[int]:
    """Re-run each of the phase's submissions in ``states`` (a subset of RERUNNABLE_STATES), oldest first,
    each through rerun_submission on its own: one that moved meanwhile is skipped. Returns the ids re-queued
    (on a dry run, those that would be)."""
    unknown = set(states) - set(RERUNNABLE_STATES)
    if unknown:
        raise ValueError(f"only {' or '.join(RERUNNABLE_STATES)} submissions can be re-run, not {sorted(unknown)}")
    chosen = list(Submission.objects.filter(phase=phase, state__in=states).order_by("created_at", "pk")
                  .values_list("pk", flat=True))
    if dry_run:
        return chosen
    return [pk for pk in chosen if rerun_submission(pk, by_user, reason, message=message)]


def select_submission(submission: Submission) -> None:
    with transaction.atomic():
        Submission.objects.filter(phase=submission.phase, team=submission.team).update(is_selected=False)
        Submission.objects.filter(pk=submission.pk).update(is_selected=True)
        boards_changed.send(sender=Submission, phase_ids=[submission.phase_id])


MAX_FACTSHEET_BYTES = 20 * 1024 * 1024


def attach_factsheet(submission: Submission, *, user, factsheet: File | None, code_url: str) -> Submission:
    """The test phase's final entry carries a factsheet (PDF) and a link to the team's code, as NTIRE required."""
    if submission.phase.kind != submission.phase.Kind.TEST:
        raise SubmissionRefused(Refusal.FACTSHEET_WRONG_PHASE)
    if not submission.team.memberships.filter(user=user).exists():
        raise SubmissionRefused(Refusal.FACTSHEET_NOT_MEMBER)
    if code_url:
        try:
            URLValidator(schemes=["https"])(code_url)
        except ValidationError:
            raise SubmissionRefused(Refusal.CODE_URL_NOT_HTTPS) from None
    fields = ["code_url"]
    if factsheet is not None:
        if factsheet.size > MAX_FACTSHEET_BYTES:
            raise SubmissionRefused(Refusal.FACTSHEET_TOO_LARGE)
        head = factsheet.read(5)
        factsheet.seek(0)
        if head != b"%PDF-":
            raise SubmissionRefused(Refusal.FACTSHEET_NOT_PDF)
        submission.factsheet.save(f"{submission.pk}-factsheet.pdf", factsheet, save=False)
        fields.append("factsheet")
    submission.code_url = code_url
    # The organizers verify what they see; a changed entry needs verifying again.
    submission.verified = False
    submission.save(update_fields=[*fields, "verified"])
    transitions.log(submission.pk, f"Factsheet and code link updated by {user}.")
    return submission
