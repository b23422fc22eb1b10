"""A metric that crashes fails its submission with the reason, refunds the slot, and the same
worker process scores the next one; Q-Align phases go to the workers that declare they run it."""

import time

import pytest

from competitions.services import create_phase
from scoring import scorer
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


def test_the_heartbeat_beats_while_the_models_load(transactional_db, scoring_settings, loaded_phase, make_team,
                                                   submit, settings, monkeypatch):
    # A slow model load (Q-Align's 8B parameters, a cold disk) must not look like a dead worker: the heartbeat
    # runs from the archive's fetch on, not only once scoring has started. (The beat thread has its own
    # connection: the rows must be committed, hence transactional_db.)
    settings.FR_HEARTBEAT_TIMEOUT = 2.5  # a beat every 0.5 s
    team = make_team("Alpha")
    submission = submit(team)
    beats_seen: list[object] = []
    real_load = scorer.load_models

    def slow_load(*args, **kwargs):
        first = Submission.objects.get(pk=submission.pk).heartbeat_at
        time_limit = time.monotonic() + 10
        while Submission.objects.get(pk=submission.pk).heartbeat_at == first:
            assert time.monotonic() < time_limit, "no heartbeat while the models loaded"
            time.sleep(0.1)
        beats_seen.append(Submission.objects.get(pk=submission.pk).heartbeat_at)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(scorer, "load_models", slow_load)
    assert pipeline.run_submission(submission.pk) == State.SCORED
    assert beats_seen
