"""A metric that crashes fails its submission with the reason, refunds the slot, and the same
worker process scores the next one; Q-Align phases go to the workers that declare they run it."""

import pytest

from competitions.services import create_phase
from scoring.profile import MetricTerm, ScoringProfile, get_profile
from submissions import pipeline
from submissions.models import Submission, SubmissionResult
from submissions.services import QALIGN_QUEUE, scoring_queue

State = Submission.State


def test_a_crashing_metric_fails_its_submission_and_the_next_one_is_scored(
        scoring_settings, loaded_phase, make_team, submit):
    team = make_team("Alpha")
    # NIQE told to crop more border than the image has: it raises inside the metric.
    broken = ScoringProfile("broken-niqe", terms=(MetricTerm("niqe", divisor=10, ceiling=10),),
                            metric_options={"niqe": {"crop_border": 100000}})
    loaded_phase.profile_snapshot = broken.to_dict()
    loaded_phase.save(update_fields=["profile_snapshot"])
    crashed = submit(team)
    assert pipeline.run_submission(crashed.pk) == State.FAILED
    crashed.refresh_from_db()
    assert crashed.error.startswith("A metric failed while scoring: RuntimeError")
    assert crashed.counts_toward_quota is False
    assert not SubmissionResult.objects.filter(submission=crashed).exists()

    loaded_phase.profile_snapshot = get_profile("ntire2025-dev").to_dict()
    loaded_phase.save(update_fields=["profile_snapshot"])
    fine = submit(team)
    assert pipeline.run_submission(fine.pk) == State.SCORED  # the same process goes on serving


@pytest.mark.django_db
def test_qalign_phases_route_to_the_qalign_queue(challenge, make_team, submit, phase):
    full = create_phase(challenge=challenge, slug="final", name="Final", scoring_profile="ntire2025")
    team = make_team("Alpha")
    dev_submission = Submission.objects.create(phase=phase, team=team, submitted_by=team.created_by,
                                               archive="x.zip")
    final_submission = Submission.objects.create(phase=full, team=team, submitted_by=team.created_by,
                                                 archive="y.zip")
    assert scoring_queue(dev_submission.pk) == "scoring"
    assert scoring_queue(final_submission.pk) == QALIGN_QUEUE
