"""Who may see and do what: the one module every view, API endpoint, selector and service asks.

It sits in ``competitions`` (the lowest app that knows a challenge), so every app above may
import it; it reads teams and submissions by attribute (reverse relations) and imports nothing
from the apps above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import email_verified
from django.conf import settings
from django.utils import timezone

from competitions.models import Challenge, ChallengePage, Phase, Registration


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
def participation_refusal(user, challenge: Challenge) -> str | None:
    """Why ``user`` may not take part in ``challenge`` now (create or join a team, download its data,
    submit), or None when they may.

    Taking part needs a registration that is approved (at once with open registration, by the
    organizers with approval), the challenge's current terms accepted, and, with
    ``FR_EMAIL_VERIFICATION``, a verified email address. The challenge's organizers take part without
    registering (their baselines).
    """
    if not (user and user.is_authenticated):
        return "Log in first."
    if is_organizer(user, challenge):
        return None
    if settings.FR_EMAIL_VERIFICATION and not email_verified(user):
        return ("Verify your email address first: follow the link we sent you "
                "(your account page sends a new one).")
    registration = Registration.objects.filter(user=user, challenge=challenge).first()
    if registration is None:
        return f"Register for {challenge.title} first: accept its terms on the challenge page."
    if registration.status == Registration.Status.PENDING:
        return (f"Your registration for {challenge.title} is waiting for the organizers' approval; "
                "we email you when they decide.")
    if registration.status == Registration.Status.DENIED:
        note = f" Their message: {registration.message}" if registration.message else ""
        return f"The organizers of {challenge.title} declined your registration.{note}"
    if registration.status == Registration.Status.REVOKED:
        note = f" Their message: {registration.message}" if registration.message else ""
        return f"The organizers of {challenge.title} revoked your participation.{note}"
    version = current_terms_version(challenge)
    if registration.terms_version != version:
        return (f"The terms of {challenge.title} changed (now version {version}); accept them again on the "
                "challenge page before you continue.")
    return None


def may_take_part(user, challenge: Challenge) -> bool:
    return participation_refusal(user, challenge) is None


def current_terms_version(challenge: Challenge) -> int:
    """The version of the challenge's Terms page; 0 when it has none."""
    version = (ChallengePage.objects.filter(challenge=challenge, kind=ChallengePage.Kind.TERMS)
               .values_list("version", flat=True).first())
    return version or 0


@dataclass(frozen=True)
class Refusal:
    """Why something is refused. ``hidden``: answer as if it did not exist (404), not with a 403."""

    code: str
    message: str
    hidden: bool = False


def data_refusal(user, phase: Phase, at=None) -> Refusal | None:
    """Who may download a phase's files (inputs, landmarks, starting kit, extras): its organizers always; anyone
    else only from the phase's opening date on (before it, a test phase's inputs must not leak: its files answer
    as if they did not exist) and only while they may take part in the challenge (participation_refusal)."""
    if is_phase_organizer(user, phase):
        return None
    if not (user and user.is_authenticated):
        return Refusal("login", "Log in to download the data.")
    if phase.opens_at > (at or timezone.now()):
        return Refusal("not_open", f"The data of {phase.name} is available from {phase.opens_at:%Y-%m-%d %H:%M} UTC.",
                       hidden=True)
    refusal = participation_refusal(user, phase.challenge)
    if refusal:
        return Refusal("not_participant", refusal)
    return None
