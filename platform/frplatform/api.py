"""The JSON API: one django-ninja NinjaAPI with a router per app, its error answers, its OpenAPI document.

Another app adds its endpoints with ``api.add_router("", its_router)`` here. Errors answer ``{"error": ...}``:
a refused write (submissions.refusals.SubmissionRefused) with its code's status, from one handler below.
"""

from __future__ import annotations

import json
import re
from functools import wraps
from typing import Any

from accounts.api_auth import token_user
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern
from django.utils.cache import patch_cache_control, patch_vary_headers
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from competitions.api import router as competitions_router
from competitions.data_api import router as data_router
from leaderboard.api import router as leaderboard_router
from submissions.api import router as submissions_router
from submissions.refusals import SubmissionRefused

PREFIX = "/api/v1/"

api = NinjaAPI(title="Face restoration challenge API", version="1", docs_url=None, openapi_url=None,
               description="Submit archives, follow their scoring and read leaderboards. Authenticate with "
                           "`Authorization: Token <key>` (your account's token page).")
api.add_router("", competitions_router)
api.add_router("", data_router)
api.add_router("", submissions_router)
api.add_router("", leaderboard_router)


@api.exception_handler(SubmissionRefused)
def refused(request: HttpRequest, exc: SubmissionRefused) -> HttpResponse:
    return api.create_response(request, {"error": exc.message, "code": exc.code}, status=exc.status)


@api.exception_handler(AuthenticationError)
def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(request, {"error": str(exc)}, status=401)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    message = "the request body is not valid JSON" if str(exc).startswith("Cannot parse request body") else str(exc)
    return api.create_response(request, {"error": message}, status=exc.status_code)


@api.exception_handler(ValidationError)
def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields = ", ".join(".".join(str(part) for part in e.get("loc", ())[1:]) or "body" for e in exc.errors)
    detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors]
    return api.create_response(request, {"error": f"invalid request: {fields}", "detail": detail}, status=422)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, {"error": "not found"}, status=404)


def _per_caller(view):
    """An answer depends on who asks (hidden phases, a team's own rows): a shared cache must never store an
    authenticated one (Cache-Control: private), nor hand an anonymous one to a member (Vary)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        patch_vary_headers(response, ["Authorization", "Cookie"])
        if request.headers.get("Authorization") or token_user(request) is not None:
            patch_cache_control(response, private=True)
        return response

    return wrapper


def urlpatterns() -> list[URLPattern]:
    """The API's URL patterns, to include under PREFIX (the names are the operations' url_name)."""
    patterns = []
    for pattern in api.urls[0]:
        if pattern.name == "api-root":
            continue
        patterns.append(URLPattern(pattern.pattern, _per_caller(pattern.callback), pattern.default_args,
                                   pattern.name))
    return patterns


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document as served (JSON: status codes are strings)."""
    return json.loads(json.dumps(api.get_openapi_schema(path_prefix=PREFIX)))


def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_schema())


def endpoints() -> list[dict[str, Any]]:
    """The API docs page's table, from the OpenAPI document: method, path, what it does, what it answers."""
    schema = openapi_schema()
    rows = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = sorted(operation.get("responses", {}))
            rows.append({
                "method": method.upper(), "path": re.sub(r"\{[^}]+\}", "<id>", path),
                "summary": operation.get("summary", ""), "token": bool(operation.get("security")),
                "success": [s for s in statuses if s.startswith("2")],
                "errors": [s for s in statuses if not s.startswith("2")],
            })
    return rows
