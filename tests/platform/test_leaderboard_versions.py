"""leaderboard/versions.py: the board version is raised, in the writer's transaction, by every change the
board shows, and by nothing else (an upload or a running submission must not make every reader rebuild)."""

from __future__ import annotations

import pytest

from competitions.models import Phase
from competitions.services import create_phase
from leaderboard.models import BoardVersion
from leaderboard.versions import board_changed, current_version
from submissions import transitions
from submissions.models import Submission, SubmissionResult

State = Submission.State


@pytest.fixture
def version(phase):
    return lambda: current_version(phase.pk)


def test_each_change_the_board_shows_raises_the_version(phase, version, make_team, make_scored, organizer):
    from organizers.services import set_disqualified
    from submissions.services import rerun_submission, select_submission

    alpha = make_team("Alpha")
    seen = [version()]

    def raised() -> bool:
        seen.append(version())
        return seen[-1] > seen[-2]

    scored = make_scored(alpha, 0.5)
    assert raised()  # a result stored
    assert rerun_submission(scored, organizer)
    assert raised()  # a result deleted by a re-run
    second = make_scored(alpha, 0.6)
    assert raised()
    select_submission(second)
    assert raised()  # queryset update, raised by the service itself
    set_disqualified(alpha, True)
    assert raised()
    alpha.name = "Alpha Renamed"
    alpha.save()
    assert raised()  # as in the admin
    SubmissionResult.objects.filter(submission=second).update(total=0.1)
    assert not raised()  # a raw update bypasses it: FR_LEADERBOARD_CACHE_SECONDS bounds that
    alpha.delete()
    assert raised()


def test_uploads_and_running_submissions_leave_the_version_alone(phase, version, make_team, make_scored):
    alpha = make_team("Alpha")
    before = version()
    make_team("Bravo")  # a new team has no result
    running = make_scored(alpha, 0.5, state=State.SUBMITTED, with_result=False)
    assert transitions.transition(running.pk, State.VALIDATING, "started")
    assert transitions.heartbeat(running.pk, progress_done=3)
    assert transitions.transition(running.pk, State.FAILED, "failed")
    assert version() == before


def test_a_phase_gets_its_counter_when_created_and_a_missing_one_is_made(challenge, phase):
    other = create_phase(challenge=challenge, slug="test", name="Test", scoring_profile=phase.scoring_profile)
    assert BoardVersion.objects.filter(phase_id__in=[phase.pk, other.pk]).count() == 2
    BoardVersion.objects.filter(phase=other).delete()
    assert current_version(other.pk) == 0
    board_changed(challenge_id=challenge.pk)
    assert current_version(other.pk) == 1 and current_version(phase.pk) == 1


def test_the_counter_is_not_written_back_by_a_stale_phase_save(phase, version, make_team, make_scored):
    stale = Phase.objects.get(pk=phase.pk)  # an organizer's form, loaded before a result arrives
    make_scored(make_team("Alpha"), 0.5)
    after_result = version()
    stale.name = "Renamed"
    stale.save()
    assert version() == after_result
