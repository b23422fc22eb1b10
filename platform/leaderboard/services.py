"""Writes for the leaderboard: the rank-stability analysis of each board (``scoring.rank_stability``).

A change of the board (``leaderboard.versions.board_changed``) schedules the analysis after the writer's
commit (``leaderboard.versions.schedule_rank_stability``); changes within ``FR_RANK_STABILITY_DEBOUNCE`` seconds
share one task, which analyses the board as it is when it runs (the latest board wins). Every analysis is stored
with the board version it was computed from and shown only while the board is still that one; an organizer can
ask for one at any time, with other draws.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError

from competitions.selectors import phase_profile
from leaderboard.models import RankStability
from leaderboard.phase_lookup import board_phase
from leaderboard.selectors import board_version, rank_stability_inputs, rank_stability_max_teams
from leaderboard.versions import RANK_STABILITY_TASK, scheduled_key
from scoring.rank_stability import analyse
from scoring.weights import MODEL_FILES

logger = logging.getLogger(__name__)


def default_resamples() -> int:
    return int(settings.FR_RANK_STABILITY_RESAMPLES)


def default_seed() -> int:
    return int(settings.FR_RANK_STABILITY_SEED)


def request_rank_stability(phase_id: int, *, by_user=None, resamples: int | None = None,
                           seed: int | None = None) -> None:
    """An organizer's demand: analyse the current board now, with these draws (the defaults otherwise)."""
    current_app.signature(RANK_STABILITY_TASK).apply_async(
        (phase_id,), {"resamples": resamples, "seed": seed, "user_id": getattr(by_user, "pk", None)})


def _fid_reference():
    """The FID reference of the worker's weights (its square root cached on disk), or None when absent."""
    # Here, not at the top: scoring.fid and scoring.scorer load torch, which the web process never does.
    from scoring.fid import FrechetReference
    from scoring.scorer import fid_cache_dir

    path = Path(settings.FR_WEIGHTS_DIR) / MODEL_FILES["fid"][1]
    if not path.is_file():
        logger.warning("no FID reference at %s: FID is held fixed in the rank-stability analysis", path)
        return None
    return FrechetReference.from_file(path, cache_dir=fid_cache_dir())


def compute_rank_stability(phase_id: int, *, resamples: int | None = None, seed: int | None = None,
                           user_id: int | None = None) -> str:
    """Analyse the phase's current board and store the analysis with its version; returns what happened."""
    cache.delete(scheduled_key(phase_id))  # a change from now on needs a task of its own
    resamples = resamples or default_resamples()
    seed = default_seed() if seed is None else seed
    phase = board_phase(phase_id=phase_id)
    if phase is None:
        return "no such phase"
    if RankStability.objects.filter(phase_id=phase_id, board=board_version(phase), resamples=resamples,
                                    seed=seed).exists():
        return "current"
    version, teams, left_out = rank_stability_inputs(phase)
    if not teams:
        return "no ranked team"
    profile = phase_profile(phase)
    reference = _fid_reference() if profile.uses_fid and any(t.features is not None for t in teams) else None
    started = time.perf_counter()
    result = analyse(profile, teams, resamples=resamples, seed=seed, reference=reference)
    seconds = time.perf_counter() - started
    now = board_phase(phase_id=phase_id)
    if now is None or board_version(now) != version:
        return "stale"  # the board changed meanwhile: that change has scheduled the next analysis
    data = {**result.to_dict(), "left_out": left_out, "max_teams": rank_stability_max_teams()}
    try:
        RankStability.objects.get_or_create(phase_id=phase_id, board=version, resamples=resamples, seed=seed,
                                            defaults={"data": data, "seconds": seconds, "requested_by_id": user_id})
    except IntegrityError:  # another worker stored the same analysis first
        return "current"
    return "stored"
