"""Writes for accounts: the profile, email verification."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.utils import timezone

from accounts.models import Profile

_VERIFY_SALT = "accounts.verify-email"


class AccountError(Exception):
    """Refused; ``code`` names the reason, the message is shown as it is."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def update_profile(user, *, full_name: str, affiliation: str) -> Profile:
    full_name, affiliation = full_name.strip(), affiliation.strip()
    if not full_name or not affiliation:
        raise AccountError("profile_incomplete", "Give your full name and your affiliation (challenge reports "
                                                 "list every participant's).")
    profile, _ = Profile.objects.get_or_create(user=user)
    profile.full_name, profile.affiliation = full_name[:200], affiliation[:200]
    profile.save(update_fields=["full_name", "affiliation"])
    return profile


def email_verification_token(user) -> str:
    """A signed token naming the user and the address it verifies; it works for FR_EMAIL_VERIFICATION_DAYS."""
    return signing.dumps({"user": user.pk, "email": user.email}, salt=_VERIFY_SALT)


def verify_email(token: str):
    """The user whose address ``token`` verifies, now marked verified; AccountError if the link is bad,
    expired, or for an address the account no longer has."""
    from django.contrib.auth import get_user_model

    try:
        data = signing.loads(token, salt=_VERIFY_SALT, max_age=settings.FR_EMAIL_VERIFICATION_DAYS * 86400)
    except signing.SignatureExpired:
        raise AccountError("link_expired", "This verification link has expired; ask for a new one.") from None
    except signing.BadSignature:
        raise AccountError("link_invalid", "This verification link is not valid.") from None
    user = get_user_model().objects.filter(pk=data.get("user")).first()
    if user is None or user.email.casefold() != str(data.get("email", "")).casefold():
        raise AccountError("link_stale", "This link verifies an address the account no longer has; "
                                         "ask for a new one.")
    profile, _ = Profile.objects.get_or_create(user=user)
    profile.verified_email, profile.email_verified_at = user.email, timezone.now()
    profile.save(update_fields=["verified_email", "email_verified_at"])
    return user


def send_verification_email(user, verify_url: str) -> None:
    from django.core.mail import send_mail

    send_mail("Verify your email address",
              f"Hello {user.username},\n\nopen this link to verify your email address:\n\n{verify_url}\n\n"
              f"It works for {settings.FR_EMAIL_VERIFICATION_DAYS} days.\n",
              None, [user.email])
