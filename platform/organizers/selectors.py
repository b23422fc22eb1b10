"""Reads for the organizer pages: permissions, the queue, entries to verify, recipients, exports' rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Subquery
from django.utils import timezone

from competitions.models import Challenge, Phase
from leaderboard.selectors import counted_results, shown_metrics
from organizers.models import InputSetJob
from scoring.archive import ArchiveLimits
from scoring.profile import ScoringProfile
from scoring.results import DatasetResult, ImageResult, ScoreReport
from submissions.models import Submission, SubmissionResult
from submissions.services import RERUNNABLE_STATES
from teams.models import Team

State = Submission.State


# --------------------------------------------------------------------------- input-set archives


@dataclass(frozen=True)
class InputArchiveLimits:
    max_archive_bytes: int = 8 * 1024**3
    max_members: int = 20_000
    max_image_bytes: int = 64 * 1024**2
    max_total_bytes: int = 16 * 1024**3
    max_pixels: int = 4096 * 4096
    max_csv_bytes: int = 64 * 1024**2

    def archive_limits(self) -> ArchiveLimits:
        """The zip reader's limits for an input set: a member is one image, the total all of them."""
        return ArchiveLimits(max_archive_bytes=self.max_archive_bytes, max_members=self.max_members,
                             max_total_uncompressed=self.max_total_bytes, max_member_bytes=self.max_image_bytes,
                             max_image_pixels=self.max_pixels)


def input_archive_limits() -> InputArchiveLimits:
    """The limits on an organizer's input-set archive (``FR_INPUT_SET_LIMITS`` overrides any of them)."""
    overrides = getattr(settings, "FR_INPUT_SET_LIMITS", None) or {}
    return InputArchiveLimits(**overrides)


def recent_input_set_jobs(phase: Phase, limit: int = 5) -> list[InputSetJob]:
    """The phase's latest uploads that waited for RetinaFace, newest first (the phase page links them)."""
    return list(InputSetJob.objects.filter(phase=phase)[:limit])


def input_set_job_status(job: InputSetJob) -> dict[str, Any]:
    """What the job's progress page shows (and its JSON sends): done of total faces located, the outcome."""
    return {
        "id": job.pk, "state": job.state, "final": job.is_final, "done": job.done, "total": job.to_locate,
        "images": job.images, "from_csv": job.from_csv, "error": job.error, "no_face": job.no_face,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


# --------------------------------------------------------------------------- the organizer's challenges
# (who may see and do what: competitions.permissions)


def organized_challenges(user) -> QuerySet[Challenge]:
    challenges = Challenge.objects.all() if user.is_staff else Challenge.objects.filter(organizers=user)
    return challenges.annotate(
        phase_count=Count("phases", distinct=True), team_count=Count("teams", distinct=True)
    ).order_by("-created_at")


# --------------------------------------------------------------------------- queue


def format_age(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


@dataclass
class RunningJob:
    submission: Submission
    worker: str
    heartbeat_age: str
    running_for: str
    progress: str


@dataclass
class PhaseCounts:
    phase: Phase
    counts: list[int]  # in QueueOverview.states' order
    total: int


@dataclass
class QueueOverview:
    states: list[tuple[str, str]]  # (state, label)
    counts: dict[str, int]
    phases: list[PhaseCounts]
    active: int
    oldest_active: Submission | None
    oldest_active_age: str
    running: list[RunningJob]
    submissions: list[Submission] = field(default_factory=list)

    @property
    def totals(self) -> list[tuple[str, str, int]]:
        return [(state, label, self.counts.get(state, 0)) for state, label in self.states]

    @property
    def submissions_total(self) -> int:
        return sum(self.counts.values())


def queue_overview(challenge: Challenge, *, state: str = "", phase_slug: str = "", limit: int = 100,
                   now: datetime | None = None) -> QueueOverview:
    now = now or timezone.now()
    states = list(State.choices)
    submissions = Submission.objects.filter(phase__challenge=challenge)
    by_phase: dict[int, dict[str, int]] = {}
    for row in submissions.values("phase_id", "state").annotate(n=Count("id")):
        by_phase.setdefault(row["phase_id"], {})[row["state"]] = row["n"]
    counts = {s: sum(c.get(s, 0) for c in by_phase.values()) for s, _ in states}
    phases = [
        PhaseCounts(p, [by_phase.get(p.pk, {}).get(s, 0) for s, _ in states], sum(by_phase.get(p.pk, {}).values()))
        for p in challenge.phases.all()
    ]
    active = submissions.filter(state__in=Submission.ACTIVE_STATES)
    oldest = active.select_related("team", "phase").order_by("created_at", "id").first()
    running = [
        RunningJob(
            submission=s, worker=s.worker or "—",
            heartbeat_age=format_age(now - s.heartbeat_at if s.heartbeat_at else None),
            running_for=format_age(now - s.started_at if s.started_at else None),
            progress=f"{s.progress_done}/{s.progress_total}" if s.progress_total else "—",
        )
        for s in active.filter(state__in=(State.VALIDATING, State.SCORING))
        .select_related("team", "phase").order_by("started_at", "id")
    ]
    listed = submissions.select_related("team", "phase", "result").order_by("-created_at", "-id")
    if state:
        listed = listed.filter(state=state)
    if phase_slug:
        listed = listed.filter(phase__slug=phase_slug)
    return QueueOverview(
        states=states, counts=counts, phases=phases, active=sum(counts[s] for s in Submission.ACTIVE_STATES),
        oldest_active=oldest, oldest_active_age=format_age(now - oldest.created_at if oldest else None),
        running=running, submissions=list(listed[:limit]),
    )


def challenge_teams(challenge: Challenge) -> QuerySet[Team]:
    return Team.objects.filter(challenge=challenge).annotate(
        member_count=Count("memberships", distinct=True), submission_count=Count("submissions", distinct=True),
        scored_count=Count("submissions", filter=Q(submissions__state=State.SCORED), distinct=True),
    ).order_by("is_baseline", "name")


# --------------------------------------------------------------------------- phase page


@dataclass
class EntryRow:
    """A team's counted (final) submission, for verification before the scores are published."""

    team: Team
    submission: Submission
    result: SubmissionResult
    metrics: list[float | None]


def phase_entries(phase: Phase) -> list[EntryRow]:
    """Every team's counted submission under the phase's selection rule, disqualified teams included."""
    result_ids = list(
        Team.objects.filter(challenge=phase.challenge_id)
        .annotate(result_id=Subquery(counted_results(phase)))
        .filter(result_id__isnull=False)
        .values_list("result_id", flat=True)
    )
    results = SubmissionResult.objects.filter(pk__in=result_ids).select_related("submission__team")
    metrics = shown_metrics(phase)
    rows = [
        EntryRow(team=r.submission.team, submission=r.submission, result=r,
                 metrics=[r.metrics.get(m) for m in metrics])
        for r in results
    ]
    rows.sort(key=lambda row: (row.team.disqualified, not row.result.valid, -row.result.total, row.submission.pk))
    return rows


def unverified_count(phase: Phase, entries: list[EntryRow] | None = None) -> int:
    """Entries still to verify before publication (baselines and disqualified teams need none)."""
    return sum(1 for row in (phase_entries(phase) if entries is None else entries)
               if not row.submission.verified and not row.team.disqualified and not row.team.is_baseline)


def rerun_count(phase: Phase) -> int:
    return Submission.objects.filter(phase=phase, state__in=RERUNNABLE_STATES).count()


def phase_recipients(phase: Phase) -> QuerySet:
    """Members of the (non-baseline) teams with at least one submission in the phase, with an address."""
    return (
        get_user_model().objects.filter(
            memberships__team__submissions__phase=phase, memberships__team__is_baseline=False, is_active=True,
        )
        .exclude(email="")
        .distinct()
        .order_by("username")
    )


# --------------------------------------------------------------------------- exports


def scored_results(phase: Phase) -> QuerySet[SubmissionResult]:
    return (
        SubmissionResult.objects.filter(submission__phase=phase, submission__state=State.SCORED)
        .select_related("submission__team")
        .order_by("submission__team__name", "submission_id")
    )


def score_report_of(result: SubmissionResult, phase: Phase | None = None) -> ScoreReport:
    """A ScoreReport rebuilt from the stored rows, in the order the run produced them (the rows' ids)."""
    profile: dict[str, Any] = dict(result.profile or {})
    if "terms" not in profile:  # an old row without the full profile: the phase's is the one it ran with
        profile = {**(phase or result.submission.phase).profile_snapshot, **profile}
    ScoringProfile.from_dict(profile)  # fail here, not halfway through a CSV
    return ScoreReport(
        profile=profile,
        images=[ImageResult(i.dataset, i.stem, dict(i.metrics), i.id_similarity, i.id_threshold)
                for i in result.images.order_by("id")],
        datasets=[DatasetResult(d.dataset, d.image_count, dict(d.metrics), d.id_similarity, d.failed_count)
                  for d in result.datasets.order_by("id")],
        overall=dict(result.metrics), id_similarity=result.id_similarity, failed_count=result.failed_count,
        terms=dict(result.terms), total=result.total, valid=result.valid, weights=dict(result.weights),
        official_weights=result.official_weights, versions=dict(result.versions), device=result.device,
        timings=dict(result.timings or {}),
    )


def phase_archives(phase: Phase) -> list[Submission]:
    return list(
        Submission.objects.filter(phase=phase).exclude(archive="").select_related("team").order_by("created_at", "id")
    )
