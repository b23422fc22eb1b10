"""A fixed-window rate limit on the Django cache (Redis in production, local memory embedded).

Every limit of the site is declared here (``LOGIN_LIMITS``, ``SIGNUP_LIMIT``, ``upload_limit``) and
applied in ``frplatform/urls.py``; the client's address is read in one place, ``client_ip``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse


def client_ip(request: HttpRequest) -> str:
    """The client's address, behind ``FR_TRUSTED_PROXIES`` proxies that each append to X-Forwarded-For.

    With no trusted proxy (the default) X-Forwarded-For is the client's own words and is ignored.
    With N, the N-th address from the right is the one the outermost trusted proxy saw (nginx's
    ``$proxy_add_x_forwarded_for`` appends ``$remote_addr``); anything left of it the client wrote.
    """
    remote = request.META.get("REMOTE_ADDR", "unknown")
    trusted = settings.FR_TRUSTED_PROXIES
    if trusted <= 0:
        return remote
    chain = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if not chain:
        return remote
    candidate = chain[-trusted] if len(chain) >= trusted else chain[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote  # a proxy that wrote garbage: fall back to the address we can see


def hit(scope: str, key: str, limit: int, window: int) -> bool:
    """Count one hit; True while the count stays within ``limit`` per ``window`` seconds."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # never store a token in a cache key
    bucket = f"rl:{scope}:{digest}:{int(time.time() // window)}"
    if cache.add(bucket, 1, timeout=window + 5):
        return True
    try:
        return cache.incr(bucket) <= limit
    except ValueError:  # expired between add and incr
        cache.add(bucket, 1, timeout=window + 5)
        return True


@dataclass(frozen=True)
class Limit:
    scope: str
    limit: int
    window: int
    key: Callable[[HttpRequest], str | None] = client_ip  # None: this limit does not apply to the request


def _account(request: HttpRequest) -> str | None:
    # The login form names the account by username, the password reset form by email address.
    username = (request.POST.get("username", "") or request.POST.get("email", "")).strip().casefold()
    return username or None


# Login (the site's and the admin's), and password reset, change and email verification, which count with
# it: per client address, and per account whatever the address, so neither a botnet against one account
# nor one address against many accounts gets far.
LOGIN_LIMITS = (Limit("login", 10, 300), Limit("login-account", 10, 300, _account))
SIGNUP_LIMIT = (Limit("signup", 10, 3600),)


def limit_posts(*limits: Limit, json: bool = False, rate: Callable[[], tuple[int, int]] | None = None):
    """Refuse POSTs beyond any of ``limits`` with 429 and a Retry-After header.

    ``rate``: a callable returning (limit, window) for the single limit given, read at each request
    (for settings). Every limit counts the request, so each one's window stays honest.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST":
                refused_window = 0
                for spec in limits:
                    limit, window = rate() if rate is not None else (spec.limit, spec.window)
                    key = spec.key(request)
                    if key is not None and not hit(spec.scope, key, limit, window):
                        refused_window = max(refused_window, window)
                if refused_window:
                    message = f"Too many attempts; try again in {refused_window // 60 or 1} minute(s)."
                    response = (JsonResponse({"error": message}, status=429) if json
                                else HttpResponse(message, status=429))
                    response["Retry-After"] = str(refused_window)
                    return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def upload_limit(view, identity: Callable[[HttpRequest], object | None], json: bool = False):
    """Uploads per person per hour (``FR_UPLOAD_RATE``), beside the phase's daily quota.

    ``identity`` names the authenticated user (token or session) or None; an unauthenticated
    request counts against its address (the view refuses it anyway).
    """
    def key(request: HttpRequest) -> str:
        user = identity(request)
        return f"user:{user.pk}" if user is not None else f"ip:{client_ip(request)}"

    return limit_posts(Limit("upload", 0, 0, key), json=json, rate=lambda: settings.FR_UPLOAD_RATE)(view)
