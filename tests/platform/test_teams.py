"""Teams: create, invite by username or link, join, size cap, leave; submissions belong to the team."""

from __future__ import annotations

import re

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from competitions.services import create_challenge
from submissions.models import Submission
from teams import services
from teams.models import Invitation, Membership, Team
from teams.services import TeamError, team_of


def members(team: Team) -> list[tuple[str, bool]]:
    return list(team.memberships.order_by("joined_at", "pk").values_list("user__username", "is_owner"))


def test_create_team_makes_the_creator_its_owner(challenge, make_user):
    alice = make_user("alice")
    team = services.create_team(challenge=challenge, name="  Restorers  ", user=alice)
    assert team.name == "Restorers" and team.created_by == alice and team.challenge == challenge
    assert members(team) == [("alice", True)]
    assert Membership.objects.get(team=team).challenge == challenge
    assert team_of(alice, challenge) == team
    with pytest.raises(TeamError, match="needs a name"):
        services.create_team(challenge=challenge, name="   ", user=make_user("bob"))


def test_team_names_are_unique_within_a_challenge(challenge, make_user):
    services.create_team(challenge=challenge, name="Restorers", user=make_user("alice"))
    with pytest.raises(TeamError, match="'Restorers' is taken"):
        services.create_team(challenge=challenge, name="Restorers", user=make_user("bob"))
    assert Team.objects.filter(name="Restorers").count() == 1
    assert not Membership.objects.filter(user__username="bob").exists()  # nothing half-made
    other = create_challenge(slug="other", title="Other")
    services.create_team(challenge=other, name="Restorers", user=make_user("carol"))


def test_one_team_per_user_per_challenge(challenge, make_user, make_team):
    alice = make_user("alice")
    first = make_team("First", owner=alice)
    with pytest.raises(TeamError, match="already in a team for this challenge"):
        services.create_team(challenge=challenge, name="Second", user=alice)
    second = make_team("Second")
    link = services.invite(team=second, by_user=second.created_by)
    with pytest.raises(TeamError, match="already in a team for this challenge"):
        services.join(token=link.token, user=alice)
    assert team_of(alice, challenge) == first
    # The database itself refuses a second membership in the same challenge ...
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(team=second, user=alice, challenge=challenge)
    # ... while another challenge is another matter.
    other = create_challenge(slug="other", title="Other")
    assert team_of(alice, other) is None
    make_team("Elsewhere", owner=alice, in_challenge=other)
    assert Membership.objects.filter(user=alice).count() == 2


def test_invite_by_username(make_user, make_team):
    team = make_team("Alpha")
    bob, mallory = make_user("bob"), make_user("mallory")
    invitation = services.invite(team=team, by_user=team.created_by, username="bob")
    assert invitation.invited_user == bob and invitation.accepted_at is None
    with pytest.raises(TeamError, match="for another user"):
        services.join(token=invitation.token, user=mallory)
    assert services.join(token=invitation.token, user=bob) == team
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert members(team) == [("alpha", True), ("bob", False)]
    with pytest.raises(TeamError, match="not valid any more"):  # used up
        services.join(token=invitation.token, user=bob)
    with pytest.raises(TeamError, match="no user named 'nobody'"):
        services.invite(team=team, by_user=team.created_by, username="nobody")
    with pytest.raises(TeamError, match="Only members can invite"):
        services.invite(team=team, by_user=mallory, username="mallory")
    with pytest.raises(TeamError, match="not valid any more"):
        services.join(token="no-such-token", user=mallory)


def test_invite_by_link_and_the_team_size_cap(challenge, make_user, make_team):
    assert challenge.max_team_size == 3
    team = make_team("Alpha")
    link = services.invite(team=team, by_user=team.created_by)
    assert link.invited_user is None
    services.join(token=link.token, user=make_user("bob"))
    services.join(token=link.token, user=make_user("carol"))  # a link serves several people
    dave = make_user("dave")
    with pytest.raises(TeamError, match=r"The team is full \(3 members at most\)"):
        services.join(token=link.token, user=dave)
    assert [name for name, _ in members(team)] == ["alpha", "bob", "carol"]
    assert team_of(dave, challenge) is None


def test_invite_and_join_through_the_site(client, make_user, make_team):
    team = make_team("Alpha")
    bob = make_user("bob")
    client.force_login(team.created_by)
    response = client.post(reverse("team-invite", args=[team.pk]), {"username": "bob"}, follow=True)
    invitation = Invitation.objects.get(team=team)
    page = response.content.decode()
    assert f"/teams/join/{invitation.token}/" in page and "Invitation for bob created" in page

    client.force_login(bob)
    assert client.get(reverse("team-join", args=[invitation.token])).status_code == 200
    response = client.post(reverse("team-join", args=[invitation.token]))
    assert response.status_code == 302 and response.url == reverse("team-detail", args=[team.pk])
    page = client.get(response.url).content.decode()
    assert "You joined Alpha" in page and "bob" in page and "alpha (owner)" in page


def test_create_team_through_the_site(client, challenge, make_user):
    alice = make_user("alice")
    client.force_login(alice)
    response = client.post(reverse("team-create", args=["ntire"]), {"name": "Restorers"})
    team = Team.objects.get(name="Restorers")
    assert response.status_code == 302 and response.url == reverse("team-detail", args=[team.pk])
    response = client.post(reverse("team-create", args=["ntire"]), {"name": "Again"})
    assert response.status_code == 200 and "already in a team" in response.content.decode()
    assert Team.objects.count() == 1


def test_leaving_passes_ownership_on(challenge, make_user, make_team):
    team = make_team("Alpha", members=["bob", "carol"])
    alpha = team.created_by
    services.leave(team=team, user=alpha)
    assert members(team) == [("bob", True), ("carol", False)]
    assert team_of(alpha, challenge) is None
    with pytest.raises(TeamError, match="not a member"):
        services.leave(team=team, user=alpha)
    carol = Membership.objects.get(team=team, user__username="carol").user
    services.leave(team=team, user=carol)  # a member who is not the owner: ownership stays
    assert members(team) == [("bob", True)]
    # Who left may start again elsewhere.
    assert services.create_team(challenge=challenge, name="Fresh start", user=alpha).name == "Fresh start"


def test_leave_through_the_site(client, make_team):
    team = make_team("Alpha", members=["bob"])
    client.force_login(team.created_by)
    response = client.post(reverse("team-leave", args=[team.pk]))
    assert response.status_code == 302 and response.url == reverse("challenge-detail", args=["ntire"])
    assert members(team) == [("bob", True)]
    assert client.get(reverse("team-detail", args=[team.pk])).status_code == 404  # not a member any more


def test_submissions_belong_to_the_team(client, loaded_phase, make_team, submit, django_user_model):
    team = make_team("Alpha", members=["bob"])
    other = make_team("Beta")
    bob = django_user_model.objects.get(username="bob")
    submission = submit(team, user=team.created_by, description="from alpha")
    submit(other)
    assert submission.team == team and submission.submitted_by == team.created_by

    # Another member sees it on the phase page, its own page and in status.json.
    client.force_login(bob)
    phase_page = client.get(reverse("phase-detail", args=["ntire", "dev"])).content.decode()
    assert re.findall(r'href="/submissions/(\d+)/"', phase_page) == [str(submission.pk)]  # not the other team's
    assert "1/10 used" in phase_page  # the quota is the team's, shared by its members
    assert client.get(reverse("submission-detail", args=[submission.pk])).status_code == 200
    assert client.get(reverse("submission-status", args=[submission.pk])).json()["team"] == "Alpha"

    # The submission stays with the team when the owner removes its author (who may not leave while the
    # phase is open: test_team_hopping.py); the author loses access.
    by_bob = submit(team, user=bob)
    services.remove_member(team=team, by_user=team.created_by, username="bob")
    assert Submission.objects.get(pk=by_bob.pk).team == team and by_bob.submitted_by == bob
    assert client.get(reverse("submission-detail", args=[by_bob.pk])).status_code == 404
    client.force_login(team.created_by)
    assert client.get(reverse("submission-detail", args=[by_bob.pk])).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_two_people_racing_for_the_last_place(make_user, make_team):
    """The team row is locked while one joins: the cap holds when joins run at the same time."""
    import threading

    from django.db import connection

    team = make_team("Alpha", members=["bob"])  # 2 of 3
    link = services.invite(team=team, by_user=team.created_by)
    racers = [make_user("carol"), make_user("dave")]
    barrier = threading.Barrier(len(racers))
    outcomes: dict[str, str] = {}

    def race(user):
        try:
            barrier.wait(10)
            services.join(token=link.token, user=user)
            outcomes[user.username] = "joined"
        except TeamError as exc:
            outcomes[user.username] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(user,)) for user in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes.values()) == ["The team is full (3 members at most).", "joined"]
    assert Membership.objects.filter(team=team).count() == 3


def test_the_open_phase_query_agrees_with_is_open(phase):
    # Phase.open_q is the query form of Phase.is_open: the no-leaving rule and the model preload use it.
    from datetime import timedelta

    from django.utils import timezone

    from competitions.models import Phase

    now = timezone.now()
    cases = {
        "open, no end": (now - timedelta(days=1), None),
        "open until later": (now - timedelta(days=1), now + timedelta(hours=1)),
        "closes now": (now - timedelta(days=1), now),
        "closed": (now - timedelta(days=2), now - timedelta(days=1)),
        "opens now": (now, None),
        "not open yet": (now + timedelta(hours=1), None),
    }
    for label, (opens_at, closes_at) in cases.items():
        Phase.objects.filter(pk=phase.pk).update(opens_at=opens_at, closes_at=closes_at)
        phase.refresh_from_db()
        queried = Phase.objects.filter(Phase.open_q(at=now), pk=phase.pk).exists()
        assert queried == phase.is_open(at=now), label
    assert {label for label, (o, c) in cases.items() if o <= now and (c is None or now < c)} == {
        "open, no end", "open until later", "opens now"}
