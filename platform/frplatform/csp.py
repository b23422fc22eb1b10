"""Content-Security-Policy for every HTML page (Django 5.2 has none built in; 6.0 will).

Scripts run only from our own origin or inline with this response's nonce (``{{ csp_nonce }}``, from the
context processor below); nothing is framed, no plugin loads, forms post only here. Styles allow
'unsafe-inline' because plotly.js writes its own <style> elements and style attributes; a style cannot
run code. A response that sets its own policy (served images: ``default-src 'none'``) keeps it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def connect_sources() -> list[str]:
    """'self', and the S3 address browsers send direct uploads' parts to (templates/phase.html)."""
    sources = ["'self'"]
    if settings.S3_BUCKET:
        endpoint = settings.S3_PUBLIC_ENDPOINT_URL or settings.STORAGES["default"].get("OPTIONS", {}).get(
            "endpoint_url") or ""
        origin = _origin(endpoint) if endpoint else f"https://{settings.S3_BUCKET}.s3.amazonaws.com"
        if origin:
            sources.append(origin)
        if not endpoint:
            sources.append("https://*.amazonaws.com")  # AWS itself: the bucket's regional hosts
    return sources


def policy(nonce: str) -> str:
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", f"'nonce-{nonce}'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": connect_sources(),
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(18)  # type: ignore[attr-defined]
        response = self.get_response(request)
        if HEADER not in response and response.get("Content-Type", "").startswith("text/html"):
            response[HEADER] = policy(request.csp_nonce)  # type: ignore[attr-defined]
        return response


def nonce(request: HttpRequest) -> dict[str, str]:
    """Template context: ``csp_nonce`` for the few inline scripts."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
