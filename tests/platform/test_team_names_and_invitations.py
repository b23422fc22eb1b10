"""Team names are checked in the service, and invitations expire, can be revoked, and owners remove members."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from teams import services
from teams.models import Invitation, Membership, Team
from teams.services import TEAM_NAME_MAX, TeamError


def test_the_5009_character_name_with_a_bidi_override_is_refused_on_postgresql(client, challenge, make_user):
    client.force_login(make_user("alice"))
    name = "x" * 5008 + "\u202e"
    response = client.post(reverse("team-create", args=["ntire"]), {"name": name})
    assert response.status_code == 200  # the form again, not a 500 from the database
    assert f"at most {TEAM_NAME_MAX} characters" in response.content.decode()
    assert not Team.objects.exists()


@pytest.mark.parametrize("name", ["Team\u202eevil", "Zero\u200bwidth", "Tab\there", "Line\u2028break", "Nul\x00"])
def test_control_and_invisible_characters_are_refused(challenge, make_user, name):
    with pytest.raises(TeamError, match="control or invisible formatting characters"):
        services.create_team(challenge=challenge, name=name, user=make_user("alice"))


def test_longest_name_is_accepted(challenge, make_user):
    assert services.create_team(challenge=challenge, name="n" * TEAM_NAME_MAX, user=make_user("alice"))


@pytest.mark.parametrize("twin", ["ALPHA team", "alpha  TEAM", "Ａｌｐｈａ Team", "Alpha\u00a0Team", "ALPHA TEAM"])
def test_names_that_differ_only_by_case_spacing_or_form_are_taken(challenge, make_user, twin):
    services.create_team(challenge=challenge, name="Alpha Team", user=make_user("alice"))
    with pytest.raises(TeamError, match="'Alpha Team'.*differ only by case, spacing or character form"):
        services.create_team(challenge=challenge, name=twin, user=make_user("bob"))
    assert Team.objects.count() == 1


def test_the_database_refuses_a_twin_name_too(challenge, make_user):
    from django.db import IntegrityError, transaction

    alice = make_user("alice")
    Team.objects.create(challenge=challenge, name="Beta", created_by=alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        Team.objects.create(challenge=challenge, name="BETA", created_by=alice)


# --------------------------------------------------------------------------- invitations


def test_an_expired_link_is_refused(make_user, make_team, settings):
    settings.FR_INVITATION_DAYS = 7
    team = make_team("Alpha")
    link = services.invite(team=team, by_user=team.created_by)
    assert timedelta(days=6) < link.expires_at - timezone.now() <= timedelta(days=7)
    Invitation.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(TeamError, match="expired on"):
        services.join(token=link.token, user=make_user("bob"))
    assert team.memberships.count() == 1
    assert list(services.open_invitations(team)) == []


def test_a_revoked_link_is_refused(client, make_user, make_team):
    team = make_team("Alpha", members=["bob"])
    bob = Membership.objects.get(team=team, user__username="bob").user
    by_owner = services.invite(team=team, by_user=team.created_by)
    by_bob = services.invite(team=team, by_user=bob)
    with pytest.raises(TeamError, match="Only the team's owner or the member who made it"):
        services.revoke(team=team, invitation_id=by_owner.pk, by_user=bob)
    services.revoke(team=team, invitation_id=by_bob.pk, by_user=bob)  # the member who made it may
    client.force_login(team.created_by)
    page = client.get(reverse("team-detail", args=[team.pk])).content.decode()
    assert by_owner.token in page and by_bob.token not in page
    response = client.post(reverse("team-invitation-revoke", args=[team.pk, by_owner.pk]), follow=True)
    assert "Invitation revoked" in response.content.decode()
    for link in (by_owner, by_bob):
        with pytest.raises(TeamError, match="revoked"):
            services.join(token=link.token, user=make_user(f"late-{link.pk}"))
    assert team.memberships.count() == 2


def test_the_owner_removes_a_member_and_only_the_owner(client, make_user, make_team):
    team = make_team("Alpha", members=["bob", "carol"])
    bob = Membership.objects.get(team=team, user__username="bob").user
    with pytest.raises(TeamError, match="Only the team's owner"):
        services.remove_member(team=team, by_user=bob, username="carol")
    with pytest.raises(TeamError, match="leave the team instead"):
        services.remove_member(team=team, by_user=team.created_by, username="alpha")
    client.force_login(team.created_by)
    response = client.post(reverse("team-remove-member", args=[team.pk]), {"username": "carol"}, follow=True)
    assert "carol was removed from Alpha" in response.content.decode()
    assert list(team.memberships.values_list("user__username", flat=True).order_by("pk")) == ["alpha", "bob"]
    with pytest.raises(TeamError, match="carol is not a member"):
        services.remove_member(team=team, by_user=team.created_by, username="carol")
