import secrets
import unicodedata
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def team_name_key(name: str) -> str:
    """What two team names of a challenge must not share: NFKC, case-folded, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


class Team(models.Model):
    challenge = models.ForeignKey("competitions.Challenge", on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100)
    # The name folded (Unicode NFKC, case, spaces): two teams of a challenge never share it, so no
    # team can pass for another ("ALPHA", "Ａｌｐｈａ"). Kept in step with the name by save().
    name_key = models.CharField(max_length=400, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    disqualified = models.BooleanField(default=False)
    is_baseline = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["challenge", "name"], name="unique_team_name"),
            models.UniqueConstraint(fields=["challenge", "name_key"], name="unique_team_name_key"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.name_key = team_name_key(self.name)
        if kwargs.get("update_fields") is not None and "name" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "name_key"}
        super().save(*args, **kwargs)


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    # Denormalised so the database itself enforces one team per user per challenge.
    challenge = models.ForeignKey("competitions.Challenge", on_delete=models.CASCADE, related_name="+")
    is_owner = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["challenge", "user"], name="one_team_per_challenge")]


def new_invitation_token() -> str:
    return secrets.token_urlsafe(24)


def invitation_expiry():
    return timezone.now() + timedelta(days=settings.FR_INVITATION_DAYS)


class Invitation(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    token = models.CharField(max_length=64, unique=True, default=new_invitation_token)
    invited_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="invitations"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(default=invitation_expiry)
    revoked_at = models.DateTimeField(null=True, blank=True)
