"""Team hopping (issue 14): a person gains no submissions and no second board row by changing teams.

The rules (teams/services.py, README "Teams and fair play"): nobody leaves a team that has a submission
in a phase open now; a person submits to a phase for one team only; a team without members leaves the
board.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from accounts.models import ApiToken
from django.urls import reverse
from django.utils import timezone

from leaderboard.selectors import phase_leaderboard
from submissions.models import Submission
from submissions.services import SubmissionRefused, cancel_submission
from teams import services
from teams.models import Membership
from teams.services import TeamError
from tests.platform.conftest import upload_file


@pytest.fixture
def alpha(loaded_phase, make_team):
    loaded_phase.max_per_day = 1
    loaded_phase.save(update_fields=["max_per_day"])
    return make_team("Alpha", members=["bob"])


def bob_of(team):
    return Membership.objects.get(team=team, user__username="bob").user


def test_the_hop_of_the_issue_is_refused(client, alpha, submit, make_archive, loaded_phase):
    """Bob uses the team's daily quota, leaves, creates a team and submits again: refused at each step."""
    bob = bob_of(alpha)
    submit(alpha, user=bob)
    with pytest.raises(SubmissionRefused, match="1 submissions a day"):
        submit(alpha, user=bob)
    with pytest.raises(TeamError, match="submitted to Development, which is still open: members cannot leave"):
        services.leave(team=alpha, user=bob)
    client.force_login(bob)
    page = client.post(reverse("team-leave", args=[alpha.pk]), follow=True).content.decode()
    assert "members cannot leave" in page and Membership.objects.filter(team=alpha, user=bob).exists()

    # Even removed by the owner, Bob enters this phase for Alpha only.
    services.remove_member(team=alpha, by_user=alpha.created_by, username="bob")
    hop = services.create_team(challenge=alpha.challenge, name="Hop", user=bob)
    with pytest.raises(SubmissionRefused, match="already submitted to this phase for the team Alpha"):
        submit(hop, user=bob)
    token = ApiToken.objects.create(user=bob)
    response = client.post(f"/api/v1/phases/{loaded_phase.pk}/submissions",
                           {"archive": upload_file(make_archive())}, HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 400 and "one team only" in response.json()["error"]
    assert not Submission.objects.filter(team=hop).exists()
    assert "already submitted to this phase for the team Alpha" in client.get(
        reverse("phase-detail", args=["ntire", "dev"])).content.decode()


def test_a_member_who_did_not_submit_cannot_leave_either(alpha, submit):
    submit(alpha)  # by the owner
    with pytest.raises(TeamError, match="members cannot leave"):
        services.leave(team=alpha, user=bob_of(alpha))


def test_leaving_is_free_before_submitting_after_closing_and_after_a_cancelled_run(alpha, submit, loaded_phase):
    bob = bob_of(alpha)
    cancel_submission(submit(alpha, user=bob), by_user=bob)  # a cancelled run is no entry
    services.leave(team=alpha, user=bob)
    carol_team = services.create_team(challenge=alpha.challenge, name="Carol's", user=bob)
    assert submit(carol_team, user=bob).team == carol_team  # the cancelled run bound Bob to nobody

    submit(alpha)
    loaded_phase.closes_at = timezone.now() - timedelta(minutes=1)
    loaded_phase.save(update_fields=["closes_at"])
    services.leave(team=alpha, user=alpha.created_by)  # the phase is over: nothing to gain
    assert not alpha.memberships.exists()


def test_a_team_without_members_leaves_the_board(phase, make_team, make_scored):
    alpha, beta = make_team("Alpha"), make_team("Beta")
    make_scored(alpha, 0.9)
    make_scored(beta, 0.5)
    assert [row.team for row in phase_leaderboard(phase).rows] == ["Alpha", "Beta"]
    phase.closes_at = timezone.now() - timedelta(minutes=1)
    phase.save(update_fields=["closes_at"])
    services.leave(team=alpha, user=alpha.created_by)
    assert [row.team for row in phase_leaderboard(phase).rows] == ["Beta"]


def test_the_rules_are_shown_where_teams_are_made(client, challenge, make_user, settings):
    settings.FR_INVITATION_DAYS = 5
    client.force_login(make_user("reader"))
    for url in (reverse("challenge-detail", args=["ntire"]), reverse("team-create", args=["ntire"])):
        page = client.get(url).content.decode()
        assert "Teams and fair play" in page, url
        assert "submits to a phase for one team only" in page and "Nobody can leave a team" in page
        assert "A team without members leaves the leaderboard" in page and "work for 5 days" in page
        assert f"at most {services.TEAM_NAME_MAX} characters" in page
