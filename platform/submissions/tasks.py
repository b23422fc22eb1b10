"""Celery tasks: a few lines over the pipeline and the watchdog, imported in each body (nothing imports
this module; services send these tasks by name)."""

from celery import shared_task
from django.conf import settings


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.FR_SCORING_TIME_LIMIT,
    time_limit=settings.FR_SCORING_TIME_LIMIT + 60,
)
def score_submission(self, submission_id: int) -> str:
    from submissions import pipeline

    return pipeline.run_submission(submission_id)


@shared_task
def watchdog() -> dict[str, int]:
    from submissions import watchdog as watchdog_service

    return watchdog_service.sweep()
