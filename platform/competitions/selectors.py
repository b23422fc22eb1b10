"""Reads for challenge and phase pages."""

from django.db.models import Count, Q
from django.utils import timezone

from competitions.models import Challenge, ChallengePage, Phase, Registration
from scoring.profile import ScoringProfile, get_profile
from scoring.profile import evaluation_markdown as profile_evaluation_markdown


def open_challenges():
    return Challenge.objects.annotate(team_count=Count("teams", distinct=True)).prefetch_related("phases")


def phase_by_slugs(challenge_slug: str, phase_slug: str) -> Phase:
    return Phase.objects.select_related("challenge").get(challenge__slug=challenge_slug, slug=phase_slug)


def input_set_summary(phase: Phase) -> list[dict]:
    return list(phase.datasets.annotate(count=Count("images")).values("name", "identity_threshold", "count"))


def phase_counts(phase: Phase) -> dict:
    return phase.submissions.aggregate(
        total=Count("id"), scored=Count("id", filter=Q(state="scored"))
    )


def phase_profile(phase: Phase) -> ScoringProfile:
    """The scoring profile the phase was created with (its snapshot), or the named one for an older phase."""
    if phase.profile_snapshot:
        return ScoringProfile.from_dict(phase.profile_snapshot)
    return get_profile(phase.scoring_profile)


def challenge_pages(challenge: Challenge):
    """The challenge's tabs, in order."""
    return list(ChallengePage.objects.filter(challenge=challenge).order_by("order", "id"))


def evaluation_markdown(challenge: Challenge) -> str:
    """Every phase's formula and thresholds, from the profile the phase scores with (its snapshot)."""
    parts = []
    for phase in challenge.phases.all():
        title = f"{phase.name} ({phase.get_kind_display().lower()} phase)"
        parts.append(profile_evaluation_markdown(phase_profile(phase), title))
    return "\n".join(parts)


def phase_timeline(challenge: Challenge, now=None) -> list[dict]:
    """The phases in order, each with whether it is open now, upcoming or closed (the page says how long for)."""
    now = now or timezone.now()
    return [{"phase": phase,
             "state": "open" if phase.is_open(now) else "upcoming" if phase.opens_at > now else "closed"}
            for phase in challenge.phases.all()]


def registration_of(user, challenge: Challenge):
    if not user.is_authenticated:
        return None
    return Registration.objects.filter(user=user, challenge=challenge).first()


def registrations(challenge: Challenge, status: str | None = None):
    rows = Registration.objects.filter(challenge=challenge).select_related("user", "user__profile", "decided_by")
    return rows.filter(status=status) if status else rows
