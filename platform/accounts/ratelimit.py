"""A fixed-window rate limit on the Django cache (Redis in production, local memory embedded)."""

from __future__ import annotations

import hashlib
import time
from functools import wraps

from django.core.cache import cache
from django.http import HttpResponse, JsonResponse


def client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")


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


def limit_posts(scope: str, limit: int, window: int, key=lambda request: client_ip(request), json: bool = False,
                rate=None):
    """Refuse POSTs beyond ``limit`` per ``window`` seconds with 429 and a Retry-After header.

    ``rate``: a callable returning (limit, window), read at each request (for settings).
    """

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            nonlocal limit, window
            if rate is not None:
                limit, window = rate()
            if request.method == "POST" and not hit(scope, key(request), limit, window):
                message = f"Too many attempts; try again in {window // 60 or 1} minute(s)."
                response = JsonResponse({"error": message}, status=429) if json else HttpResponse(message, status=429)
                response["Retry-After"] = str(window)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
