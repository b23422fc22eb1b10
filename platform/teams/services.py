"""Writes for teams: create, invite, join, leave. One team per user per challenge."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from competitions.models import Challenge
from teams.models import Invitation, Membership, Team


class TeamError(Exception):
    """Refused; the message is shown to the user as it is."""


def team_of(user, challenge: Challenge) -> Team | None:
    if not user.is_authenticated:
        return None
    membership = Membership.objects.filter(user=user, challenge=challenge).select_related("team").first()
    return membership.team if membership else None


def create_team(*, challenge: Challenge, name: str, user) -> Team:
    name = name.strip()
    if not name:
        raise TeamError("A team needs a name.")
    if team_of(user, challenge):
        raise TeamError("You are already in a team for this challenge; leave it first.")
    try:
        with transaction.atomic():
            team = Team.objects.create(challenge=challenge, name=name, created_by=user)
            Membership.objects.create(team=team, user=user, challenge=challenge, is_owner=True)
    except IntegrityError:
        raise TeamError(f"The name {name!r} is taken in this challenge, or you joined a team meanwhile.") from None
    return team


def invite(*, team: Team, by_user, username: str | None = None) -> Invitation:
    if not Membership.objects.filter(team=team, user=by_user).exists():
        raise TeamError("Only members can invite to a team.")
    invited = None
    if username:
        from django.contrib.auth import get_user_model

        invited = get_user_model().objects.filter(username=username).first()
        if invited is None:
            raise TeamError(f"There is no user named {username!r}.")
    return Invitation.objects.create(team=team, created_by=by_user, invited_user=invited)


def join(*, token: str, user) -> Team:
    invitation = Invitation.objects.select_related("team__challenge").filter(token=token).first()
    if invitation is None or invitation.accepted_at is not None and invitation.invited_user_id:
        raise TeamError("This invitation is not valid any more.")
    if invitation.invited_user_id and invitation.invited_user_id != user.pk:
        raise TeamError("This invitation is for another user.")
    team = invitation.team
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team.pk)
        if team_of(user, team.challenge):
            raise TeamError("You are already in a team for this challenge; leave it first.")
        if team.memberships.count() >= team.challenge.max_team_size:
            raise TeamError(f"The team is full ({team.challenge.max_team_size} members at most).")
        Membership.objects.create(team=team, user=user, challenge=team.challenge)
        if invitation.invited_user_id:
            invitation.accepted_at = timezone.now()
            invitation.save(update_fields=["accepted_at"])
    return team


def leave(*, team: Team, user) -> None:
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(team=team, user=user).delete()
        if not deleted:
            raise TeamError("You are not a member of this team.")
        remaining = team.memberships.order_by("joined_at").first()
        if remaining and not team.memberships.filter(is_owner=True).exists():
            Membership.objects.filter(pk=remaining.pk).update(is_owner=True)
