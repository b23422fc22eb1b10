"""Who may see and do what: the one module every view, API endpoint, selector and service asks.

It sits in ``competitions`` (the lowest app that knows a challenge), so every app above may
import it; it reads models by attribute and imports nothing from the apps above.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from competitions.models import Challenge, Phase


def is_organizer(user, challenge: Challenge) -> bool:
    """Staff, or one of the challenge's organizers."""
    return bool(user and user.is_authenticated and (
        user.is_staff or challenge.organizers.filter(pk=user.pk).exists()))


def is_phase_organizer(user, phase: Phase) -> bool:
    return is_organizer(user, phase.challenge)


@dataclass(frozen=True)
class Refusal:
    """Why something is refused. ``hidden``: answer as if it did not exist (404), not with a 403."""

    code: str
    message: str
    hidden: bool = False


def data_refusal(user, phase: Phase, at=None) -> Refusal | None:
    """Who may download a phase's files (inputs, landmarks, starting kit, extras): its organizers always; anyone
    else signed in from the phase's opening date on (before it, a test phase's inputs must not leak: its files
    answer as if they did not exist)."""
    if is_phase_organizer(user, phase):
        return None
    if not (user and user.is_authenticated):
        return Refusal("login", "Log in to download the data.")
    if phase.opens_at > (at or timezone.now()):
        return Refusal("not_open", f"The data of {phase.name} is available from {phase.opens_at:%Y-%m-%d %H:%M} UTC.",
                       hidden=True)
    return None
