"""Celery tasks of the organizer pages (default queue): a few lines over their services."""

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def locate_faces(job_id: int) -> str:
    """RetinaFace for the inputs of an uploaded input set that its CSV did not cover (organizers.models.InputSetJob)."""
    from organizers.services import run_input_set_job

    return run_input_set_job(job_id)
