"""The upgrade: members of teams that existed before registration keep taking part (migration 0004)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("competitions", "0003_phase_downloads"), ("accounts", "0002_profile_unique_email"),
          ("teams", "0002_team_name_key_invitation_expiry")]
AFTER = [("competitions", "0004_existing_members_take_part")]


@pytest.mark.django_db(transaction=True)
def test_existing_team_members_are_registered_and_verified_others_are_not():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User, Challenge, Team, Membership = (old.get_model("auth", "User"), old.get_model("competitions", "Challenge"),  # noqa: N806
                                         old.get_model("teams", "Team"), old.get_model("teams", "Membership"))
    member = User.objects.create(username="member", email="member@example.org")
    loner = User.objects.create(username="loner", email="loner@example.org")
    challenge = Challenge.objects.create(slug="running", title="Running")
    team = Team.objects.create(challenge=challenge, name="Old team", name_key="old team", created_by=member)
    Membership.objects.create(team=team, user=member, challenge=challenge, is_owner=True)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    Registration, Profile = new.get_model("competitions", "Registration"), new.get_model("accounts", "Profile")  # noqa: N806
    registration = Registration.objects.get(user_id=member.pk, challenge_id=challenge.pk)
    assert registration.status == "approved" and registration.terms_version == 0
    assert Profile.objects.get(user_id=member.pk).verified_email == "member@example.org"
    assert not Registration.objects.filter(user_id=loner.pk).exists()
    assert not Profile.objects.filter(user_id=loner.pk).exists()

    executor = MigrationExecutor(connection)  # back to the latest state for the tests that follow
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
