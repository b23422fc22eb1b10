"""Who an API request acts for: ``Authorization: Token <key>`` (accounts.models.ApiToken), else the session.

A wrong, revoked or malformed token is refused; it never falls back to the browser session."""

from __future__ import annotations

from accounts.models import ApiToken


def token_user(request):
    header = request.headers.get("Authorization", "")
    if header:
        if header.startswith("Token "):
            token = ApiToken.objects.select_related("user").filter(key=header[6:].strip()).first()
            if token and token.user.is_active:
                return token.user
        return None
    return request.user if request.user.is_authenticated else None
