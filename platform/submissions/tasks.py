"""Celery tasks: a few lines over the pipeline and the watchdog."""

from celery import shared_task
from django.conf import settings

from submissions import pipeline
from submissions import watchdog as watchdog_service


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.FR_SCORING_TIME_LIMIT,
    time_limit=settings.FR_SCORING_TIME_LIMIT + 60,
)
def score_submission(self, submission_id: int) -> str:
    return pipeline.run_submission(submission_id)


@shared_task
def watchdog() -> dict[str, int]:
    return watchdog_service.sweep()
