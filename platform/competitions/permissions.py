"""Who may see and do what: the one module every view, API endpoint, selector and service asks.

It sits in ``competitions`` (the lowest app that knows a challenge), so every app above may
import it; it reads teams and submissions by attribute (reverse relations) and imports nothing
from the apps above.
"""

from __future__ import annotations

from typing import Any

from competitions.models import Challenge, Phase


def is_organizer(user, challenge: Challenge) -> bool:
    """Staff, or one of the challenge's organizers."""
    return bool(user and user.is_authenticated and (
        user.is_staff or challenge.organizers.filter(pk=user.pk).exists()))


def can_create_challenge(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_staff or user.has_perm("competitions.add_challenge")))


def is_phase_organizer(user, phase: Phase) -> bool:
    return is_organizer(user, phase.challenge)


def can_view_team(user, team: Any) -> bool:
    """A team's page: its members and the challenge's organizers (``team`` is a ``teams.Team``)."""
    if not (user and user.is_authenticated):
        return False
    return team.memberships.filter(user=user).exists() or is_organizer(user, team.challenge)


def can_view_submission(user, submission: Any) -> bool:
    """A submission's page, log and images: its team's members and the organizers (``submissions.Submission``)."""
    if not (user and user.is_authenticated):
        return False
    if is_organizer(user, submission.phase.challenge):
        return True
    return submission.team.memberships.filter(user=user).exists()


def phase_scores_visible_to_team(phase: Phase, user) -> bool:
    """Whether a team member (or an organizer) may see the scores of the team's own runs in ``phase``: always,
    unless the phase hides scores from everyone until publication."""
    if phase.visibility != Phase.Visibility.HIDDEN or phase.published:
        return True
    return is_phase_organizer(user, phase)


def scores_visible_to_team(submission: Any, user) -> bool:
    return phase_scores_visible_to_team(submission.phase, user)


def can_see_board(user, phase: Phase) -> bool:
    """The phase's leaderboard: everyone once its scores are public, the organizers (a preview) before."""
    return phase.scores_public or is_phase_organizer(user, phase)


def may_change_selection(user, phase: Phase) -> bool:
    """Choosing the submission that counts: while the phase is open, and the organizers at any time."""
    return phase.is_open() or is_phase_organizer(user, phase)
