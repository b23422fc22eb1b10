"""Reads for challenge and phase pages."""

from django.db.models import Count, Q

from competitions.models import Challenge, Phase
from scoring.profile import ScoringProfile, get_profile


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
