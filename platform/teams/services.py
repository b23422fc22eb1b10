"""Writes for teams: create, invite, revoke, join, leave, remove a member. One team per user per challenge.

Rules kept here and nowhere else (README, "Teams and fair play"):

* only those who may take part (``competitions.permissions.participation_refusal``: registered, approved,
  current terms accepted) create or join a team;
* a team name is 1 to ``TEAM_NAME_MAX`` characters, without control or invisible formatting characters
  (bidirectional overrides, zero-width spaces), and differs from every other team name of the challenge
  by more than case, spacing or Unicode compatibility form (``teams.models.team_name_key``);
* an invitation works until it expires (``FR_INVITATION_DAYS``) or a member revokes it; one for a named
  user is used up when they join, a link serves until then (the team's size cap still holds);
* nobody leaves a team that has a submission in a phase open now (``leave_refusal``): a member can
  neither take the team's used quota to a fresh team nor put the same work on the board twice. The
  owner may still remove a member; what the member submitted stays with the team;
* a person submits to a phase for one team only (``submissions.services.quota_status``), and a team
  left without members leaves the leaderboard (``leaderboard.selectors``).
"""

from __future__ import annotations

import unicodedata

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from competitions.models import Challenge, Phase
from competitions.permissions import participation_refusal
from competitions.signals import boards_changed
from teams.models import Invitation, Membership, Team, team_name_key

TEAM_NAME_MAX = 60
# Cc: control characters; Cf: invisible formatting (bidi overrides, zero-width); Zl/Zp: line breaks;
# Co/Cs/Cn: private use, surrogates, unassigned: none belongs in a name shown to everyone.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})


class TeamError(Exception):
    """Refused; the message is shown to the user as it is."""


def rules_context() -> dict[str, int]:
    """The numbers the pages' "Teams and fair play" section states (templates/team_rules.html)."""
    return {"name_max": TEAM_NAME_MAX, "invitation_days": settings.FR_INVITATION_DAYS}


def team_of(user, challenge: Challenge) -> Team | None:
    if not user.is_authenticated:
        return None
    membership = Membership.objects.filter(user=user, challenge=challenge).select_related("team").first()
    return membership.team if membership else None


def clean_team_name(name: str) -> str:
    """The name as stored (stripped), or TeamError saying what is wrong with it."""
    name = name.strip()
    if not name:
        raise TeamError("A team needs a name.")
    if len(name) > TEAM_NAME_MAX:
        raise TeamError(f"A team name has at most {TEAM_NAME_MAX} characters; this one has {len(name)}.")
    bad = sorted({c for c in name if unicodedata.category(c) in _FORBIDDEN_CATEGORIES})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad)
        raise TeamError(f"A team name cannot contain control or invisible formatting characters ({shown}).")
    return name


def check_name_free(challenge: Challenge, name: str) -> str:
    """The name's key, or TeamError when another team of the challenge has a name that looks the same."""
    key = team_name_key(name)
    clash = Team.objects.filter(challenge=challenge, name_key=key).values_list("name", flat=True).first()
    if clash is not None:
        raise TeamError(f"The name {name!r} is taken in this challenge (by {clash!r}: names that differ only "
                        "by case, spacing or character form count as the same).")
    return key


def create_team(*, challenge: Challenge, name: str, user) -> Team:
    name = clean_team_name(name)
    refusal = participation_refusal(user, challenge)
    if refusal:
        raise TeamError(refusal)
    if team_of(user, challenge):
        raise TeamError("You are already in a team for this challenge; leave it first.")
    check_name_free(challenge, name)
    try:
        with transaction.atomic():
            team = Team.objects.create(challenge=challenge, name=name, created_by=user)
            Membership.objects.create(team=team, user=user, challenge=challenge, is_owner=True)
    except IntegrityError:
        raise TeamError(f"The name {name!r} is taken in this challenge, or you joined a team meanwhile.") from None
    return team


def _is_owner(team: Team, user) -> bool:
    return Membership.objects.filter(team=team, user=user, is_owner=True).exists()


def invite(*, team: Team, by_user, username: str | None = None) -> Invitation:
    if not Membership.objects.filter(team=team, user=by_user).exists():
        raise TeamError("Only members can invite to a team.")
    invited = None
    if username:
        invited = get_user_model().objects.filter(username=username).first()
        if invited is None:
            raise TeamError(f"There is no user named {username!r}.")
    return Invitation.objects.create(team=team, created_by=by_user, invited_user=invited)


def open_invitations(team: Team):
    """The team's invitations that still work."""
    return team.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True,
                                   expires_at__gt=timezone.now()).select_related("invited_user")


def revoke(*, team: Team, invitation_id: int, by_user) -> Invitation:
    """The owner, or the member who made it, withdraws an invitation: its link stops working."""
    invitation = Invitation.objects.filter(team=team, pk=invitation_id).first()
    if invitation is None:
        raise TeamError("There is no such invitation.")
    if not (_is_owner(team, by_user) or invitation.created_by_id == by_user.pk
            and Membership.objects.filter(team=team, user=by_user).exists()):
        raise TeamError("Only the team's owner or the member who made it can revoke an invitation.")
    Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    invitation.refresh_from_db()
    return invitation


def join(*, token: str, user) -> Team:
    invitation = Invitation.objects.select_related("team__challenge").filter(token=token).first()
    if invitation is None or invitation.accepted_at is not None and invitation.invited_user_id:
        raise TeamError("This invitation is not valid any more.")
    if invitation.revoked_at is not None:
        raise TeamError("This invitation was revoked by the team; ask them for a new one.")
    if invitation.expires_at <= timezone.now():
        raise TeamError(f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC; "
                        "ask the team for a new one.")
    if invitation.invited_user_id and invitation.invited_user_id != user.pk:
        raise TeamError("This invitation is for another user.")
    team = invitation.team
    refusal = participation_refusal(user, team.challenge)
    if refusal:
        raise TeamError(refusal)
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


def leave_refusal(team: Team) -> str | None:
    """Why nobody may leave ``team`` now, or None."""
    submissions = team.submissions  # submissions.Submission, by its reverse relation (that app sits above this one)
    entry = (
        submissions.filter(Phase.open_q(prefix="phase__"))
        .exclude(state=submissions.model.State.CANCELLED).select_related("phase").first()
    )
    open_phase = entry.phase if entry else None
    if open_phase is None:
        return None
    return (f"Your team has submitted to {open_phase.name}, which is still open: members cannot leave until it "
            "closes, so that nobody takes the team's used submissions or board row to a new team. "
            "Ask the organizers if you must.")


def _after_departure(team: Team) -> None:
    """Ownership passes to the longest-standing member; an emptied team leaves the leaderboard."""
    remaining = team.memberships.order_by("joined_at", "pk").first()
    if remaining is None:
        boards_changed.send(sender=Team, challenge_id=team.challenge_id)
    elif not team.memberships.filter(is_owner=True).exists():
        Membership.objects.filter(pk=remaining.pk).update(is_owner=True)


def leave(*, team: Team, user) -> None:
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team.pk)
        if not Membership.objects.filter(team=team, user=user).exists():
            raise TeamError("You are not a member of this team.")
        refusal = leave_refusal(team)
        if refusal:
            raise TeamError(refusal)
        Membership.objects.filter(team=team, user=user).delete()
        _after_departure(team)


def remove_member(*, team: Team, by_user, username: str) -> None:
    """The owner removes a member; the member's past submissions stay with the team."""
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team.pk)
        if not _is_owner(team, by_user):
            raise TeamError("Only the team's owner can remove a member.")
        membership = Membership.objects.filter(team=team, user__username=username).first()
        if membership is None:
            raise TeamError(f"{username} is not a member of this team.")
        if membership.user_id == by_user.pk:
            raise TeamError("You cannot remove yourself; leave the team instead.")
        membership.delete()
        _after_departure(team)
