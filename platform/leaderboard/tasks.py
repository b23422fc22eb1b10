"""Celery tasks of the leaderboard (default queue): a few lines over its services."""

from celery import shared_task


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1860)
def rank_stability(phase_id: int, resamples: int | None = None, seed: int | None = None,
                   user_id: int | None = None) -> str:
    from leaderboard.services import compute_rank_stability

    return compute_rank_stability(phase_id, resamples=resamples, seed=seed, user_id=user_id)
