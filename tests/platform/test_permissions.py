"""competitions.permissions, the one module for who may see and do what, rule by rule.

Each rule is asked for an anonymous visitor, an outsider, a member of the team, another challenge's
organizer, this challenge's organizer and staff; the pages that ask them are tested in test_access.py,
test_visibility.py and test_teams.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from competitions import permissions
from competitions.models import Phase
from competitions.services import create_challenge

VIEWERS = ("anonymous", "outsider", "member", "other_organizer", "organizer", "staff")


@pytest.fixture
def people(make_user, organizer, make_team, challenge) -> dict:
    other = make_user("elsewhere")
    create_challenge(slug="other", title="Another challenge", organizers=[other])
    team = make_team("Alpha", members=["bea"])
    return {
        "anonymous": AnonymousUser(), "outsider": make_user("outsider"), "member": team.memberships.get(
            user__username="bea").user, "other_organizer": other, "organizer": organizer,
        "staff": make_user("root", is_staff=True), "team": team,
    }


def allowed(people: dict, rule) -> set[str]:
    return {name for name in VIEWERS if rule(people[name])}


def test_organizers_and_staff_are_the_challenges_organizers(people, challenge, phase):
    assert allowed(people, lambda u: permissions.is_organizer(u, challenge)) == {"organizer", "staff"}
    assert allowed(people, lambda u: permissions.is_phase_organizer(u, phase)) == {"organizer", "staff"}
    assert not permissions.is_organizer(None, challenge)


def test_a_team_page_is_for_its_members_and_the_organizers(people):
    assert allowed(people, lambda u: permissions.can_view_team(u, people["team"])) == {"member", "organizer", "staff"}


def test_a_submission_is_for_its_team_and_the_organizers(people, submit):
    submission = submit(people["team"], user=people["member"])
    assert allowed(people, lambda u: permissions.can_view_submission(u, submission)) == {
        "member", "organizer", "staff"}


def test_hidden_scores_are_for_the_organizers_until_published(people, phase):
    assert allowed(people, lambda u: permissions.phase_scores_visible_to_team(phase, u)) == set(VIEWERS)
    assert allowed(people, lambda u: permissions.can_see_board(u, phase)) == set(VIEWERS)
    phase.visibility = Phase.Visibility.HIDDEN
    assert allowed(people, lambda u: permissions.phase_scores_visible_to_team(phase, u)) == {"organizer", "staff"}
    assert allowed(people, lambda u: permissions.can_see_board(u, phase)) == {"organizer", "staff"}
    phase.published = True
    assert allowed(people, lambda u: permissions.phase_scores_visible_to_team(phase, u)) == set(VIEWERS)
    assert allowed(people, lambda u: permissions.can_see_board(u, phase)) == set(VIEWERS)
    phase.visibility, phase.published = Phase.Visibility.TEAM, False  # teams see their own scores only
    assert allowed(people, lambda u: permissions.phase_scores_visible_to_team(phase, u)) == set(VIEWERS)
    assert allowed(people, lambda u: permissions.can_see_board(u, phase)) == {"organizer", "staff"}


def test_the_selection_changes_while_open_and_by_the_organizers_after(people, phase):
    assert allowed(people, lambda u: permissions.may_change_selection(u, phase)) == set(VIEWERS)
    phase.closes_at = timezone.now() - timedelta(minutes=1)
    assert allowed(people, lambda u: permissions.may_change_selection(u, phase)) == {"organizer", "staff"}


def test_creating_a_challenge_takes_staff_or_the_permission(people, make_user):
    from django.contrib.auth.models import Permission

    granted = make_user("creator")
    granted.user_permissions.add(Permission.objects.get(codename="add_challenge"))
    people = {**people, "creator": granted}
    assert {n for n in (*VIEWERS, "creator") if permissions.can_create_challenge(people[n])} == {"staff", "creator"}
