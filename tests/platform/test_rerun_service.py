"""One re-run service (submissions.services.rerun_submission) behind the organizer's re-run button, "re-run all"
and ``manage.py rescore``: the same states re-run (scored, failed), the same fields reset, the same log line."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from submissions.models import Submission, SubmissionResult
from submissions.services import RERUNNABLE_STATES

State = Submission.State


@pytest.fixture
def org(client, organizer):
    client.force_login(organizer)
    return client


def world(make_team, make_scored):
    rows = {
        State.SCORED: make_scored(make_team("Alpha"), 0.5),
        State.FAILED: make_scored(make_team("Beta"), 0.0, state=State.FAILED, with_result=False),
        State.REJECTED: make_scored(make_team("Gamma"), 0.0, state=State.REJECTED, with_result=False),
        State.SCORING: make_scored(make_team("Delta"), 0.0, state=State.SCORING, with_result=False),
        State.CANCELLED: make_scored(make_team("Eps"), 0.0, state=State.CANCELLED, with_result=False),
    }
    Submission.objects.update(attempts=2, error="boom")
    return rows


def rerun_by(path: str, org, phase, rows) -> None:
    if path == "page":
        for submission in rows.values():
            org.post(reverse("organizers:submission-rerun", args=[submission.pk]))
    elif path == "all":
        org.post(reverse("organizers:phase-rerun", args=[phase.challenge.slug, phase.slug]))
    else:
        call_command("rescore", phase.challenge.slug, phase.slug, stdout=io.StringIO())


@pytest.mark.parametrize("path", ["page", "all", "command"])
def test_every_path_reruns_the_same_way(path, org, phase, make_team, make_scored, django_capture_on_commit_callbacks):
    rows = world(make_team, make_scored)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        rerun_by(path, org, phase, rows)
    after = {s.pk: s for s in Submission.objects.all()}
    for state, submission in rows.items():
        now = after[submission.pk]
        if state in RERUNNABLE_STATES:
            assert (now.state, now.attempts, now.error, now.progress_done) == (State.SUBMITTED, 0, "", 0), path
            assert not SubmissionResult.objects.filter(submission=now).exists()
            assert now.events.filter(state=State.SUBMITTED).exists()
        else:
            assert now.state == state and now.attempts == 2, (path, state)
    enqueues = [c for c in callbacks if "enqueue" in repr(c.__code__.co_names)]
    assert len(enqueues) == len(RERUNNABLE_STATES), path
