"""Who may see and do what: the one module every view, API endpoint, selector and service asks.

It sits in ``competitions`` (the lowest app that knows a challenge), so every app above may
import it; it reads models by attribute and imports nothing from the apps above.
"""

from __future__ import annotations

from competitions.models import Challenge, Phase


def is_organizer(user, challenge: Challenge) -> bool:
    """Staff, or one of the challenge's organizers."""
    return bool(user and user.is_authenticated and (
        user.is_staff or challenge.organizers.filter(pk=user.pk).exists()))


def is_phase_organizer(user, phase: Phase) -> bool:
    return is_organizer(user, phase.challenge)
