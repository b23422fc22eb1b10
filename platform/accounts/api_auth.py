"""Who an API request acts for: ``Authorization: Token <key>`` (accounts.models.ApiToken), else the session.

A request that sends an Authorization header is judged by it alone: a wrong, revoked, malformed or deactivated
token is refused and never falls back to the browser session. A session (no header) is held to Django's CSRF
check on writes, as the site's forms are.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.security import APIKeyHeader
from ninja.utils import check_csrf

from accounts.models import ApiToken

AUTH_HINT = "authentication required: send 'Authorization: Token <key>'"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def token_user(request: HttpRequest):
    """The user the request acts for, or None (anonymous, or a header that names nobody)."""
    header = request.headers.get("Authorization", "")
    if header:
        if header.startswith("Token "):
            token = ApiToken.objects.select_related("user").filter(key=header[6:].strip()).first()
            if token and token.user.is_active:
                return token.user
        return None
    return request.user if request.user.is_authenticated else None


class TokenAuth(APIKeyHeader):
    """django-ninja's auth for the endpoints that need a user: the token, or the session with its CSRF check."""

    param_name = "Authorization"

    def __call__(self, request: HttpRequest):
        user = token_user(request)
        if user is None:
            raise AuthenticationError(message=AUTH_HINT)
        session = not request.headers.get("Authorization")
        if session and request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise HttpError(403, "CSRF check failed")
        return user

    def authenticate(self, request: HttpRequest, key: str | None):  # the work is in __call__
        return None


token_auth = TokenAuth()


class ErrorOut(Schema):
    """Every error answer of the API: ``{"error": message}``; a refused write adds its code, a malformed request
    the validation errors."""

    error: str
    code: str | None = None
    detail: list[dict] | None = None
