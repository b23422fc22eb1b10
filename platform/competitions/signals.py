"""Signals by which a lower app announces a change to the apps above it, without importing them."""

from django.dispatch import Signal

# What a phase's leaderboard shows changed through a queryset update (a selection, a team emptied): sent in
# the writer's transaction with ``phase_ids`` (an iterable) or ``challenge_id`` (all its phases).
# leaderboard.versions raises the boards' versions on it.
boards_changed = Signal()
