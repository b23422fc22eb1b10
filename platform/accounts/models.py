import secrets

from django.conf import settings
from django.db import models


def new_token_key() -> str:
    return secrets.token_hex(20)


class ApiToken(models.Model):
    """A personal token for the JSON API and the participant command line."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    key = models.CharField(max_length=40, unique=True, default=new_token_key)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"token of {self.user}"


class Profile(models.Model):
    """What challenge reports need of a participant, and whether their email address is verified."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    full_name = models.CharField(max_length=200, blank=True)
    affiliation = models.CharField(max_length=200, blank=True)
    # The address verified, and when: changing the address needs a new verification.
    verified_email = models.EmailField(blank=True)
    email_verified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


def email_verified(user) -> bool:
    profile = Profile.objects.filter(user=user).first()
    return bool(profile and profile.email_verified_at and user.email
                and profile.verified_email.casefold() == user.email.casefold())
