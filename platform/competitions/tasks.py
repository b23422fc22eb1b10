"""Celery tasks of the competitions app: a few lines over its services."""

from celery import shared_task


@shared_task(name="competitions.tasks.build_phase_data")
def build_phase_data(phase_id: int) -> int:
    """Build a phase's downloads (input-set zip, landmarks, starting kit); returns how many files exist."""
    from competitions import data_services
    from competitions.models import Phase

    phase = Phase.objects.select_related("challenge").filter(pk=phase_id).first()
    return len(data_services.build_phase_data(phase)) if phase else 0
