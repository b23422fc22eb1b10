"""The JSON API, token-authenticated (``Authorization: Token <key>``). A few lines over services."""

from __future__ import annotations

from functools import wraps

from accounts.models import ApiToken
from django.http import Http404, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from competitions.models import Challenge, Phase
from leaderboard.selectors import board_phase, phase_leaderboard, rank_stability_view
from leaderboard.views import board_json_response, stability_json_response
from submissions import selectors, services, uploads
from submissions.models import PendingUpload, Submission
from submissions.refusals import SubmissionRefused
from teams.services import team_of


def token_user(request):
    header = request.headers.get("Authorization", "")
    if header:
        # A wrong, revoked or malformed token is refused; it never falls back to the browser session.
        if header.startswith("Token "):
            token = ApiToken.objects.select_related("user").filter(key=header[6:].strip()).first()
            if token and token.user.is_active:
                return token.user
        return None
    return request.user if request.user.is_authenticated else None


_csrf_check = CsrfViewMiddleware(lambda request: None)


def api_view(methods: list[str], auth: bool = True):
    def decorate(view):
        @csrf_exempt  # a token is no ambient credential; session users are checked for CSRF below
        @require_http_methods(methods)
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            user = token_user(request)
            if auth and user is None:
                return JsonResponse({"error": "authentication required: send 'Authorization: Token <key>'"},
                                    status=401)
            if user is not None and not request.headers.get("Authorization") and request.method not in ("GET", "HEAD"):
                refused = _csrf_check.process_view(request, None, (), {})
                if refused is not None:
                    return JsonResponse({"error": "CSRF check failed"}, status=403)
            request.api_user = user
            try:
                response = view(request, *args, **kwargs)
            except Http404:
                response = JsonResponse({"error": "not found"}, status=404)
            # An answer depends on who asks (hidden phases, a team's own rows): a shared cache must
            # never store an authenticated one, nor hand an anonymous one to a member.
            patch_vary_headers(response, ["Authorization", "Cookie"])
            if user is not None:
                patch_cache_control(response, private=True)
            return response
        return wrapper
    return decorate


@api_view(["GET"], auth=False)
def challenges(request):
    data = [{"slug": c.slug, "title": c.title, "phases": [
        {"id": p.pk, "slug": p.slug, "name": p.name, "kind": p.kind, "open": p.is_open(),
         "opens_at": p.opens_at.isoformat(), "closes_at": p.closes_at.isoformat() if p.closes_at else None,
         "scoring_profile": p.scoring_profile} for p in c.phases.all()]}
            for c in Challenge.objects.prefetch_related("phases")]
    return JsonResponse({"challenges": data})


def _phase_and_team(request, phase_id):
    """The phase (404 if unknown) and the caller's team in its challenge (a 403 answer if none)."""
    phase = get_object_or_404(Phase.objects.select_related("challenge"), pk=phase_id)
    team = team_of(request.api_user, phase.challenge)
    if team is None:
        return phase, None, JsonResponse({"error": "you are not in a team for this challenge"}, status=403)
    return phase, team, None


@api_view(["POST"])
def submit(request, phase_id):
    phase, team, refused = _phase_and_team(request, phase_id)
    if refused:
        return refused
    archive = request.FILES.get("archive")
    if getattr(request, "archive_too_large", None):
        return JsonResponse({"error": f"The archive is larger than this phase accepts "
                                      f"({phase.max_archive_bytes / 1e6:.1f} MB at most)."}, status=413)
    if archive is None:
        return JsonResponse({"error": "send the zip as the multipart field 'archive'"}, status=400)
    try:
        submission = services.create_submission(phase=phase, team=team, user=request.api_user, upload=archive,
                                                description=request.POST.get("description", ""))
    except SubmissionRefused as exc:
        return JsonResponse({"error": str(exc), "code": exc.code}, status=exc.status)
    return JsonResponse({"id": submission.pk, "state": submission.state,
                         "status_url": f"/api/v1/submissions/{submission.pk}"}, status=201)


@api_view(["GET"])
def submission(request, pk):
    sub = get_object_or_404(Submission.objects.select_related("phase__challenge", "team"), pk=pk)
    if not selectors.can_view_submission(request.api_user, sub):
        raise Http404
    return JsonResponse(selectors.submission_status(
        sub, include_scores=selectors.scores_visible_to_team(sub, request.api_user)))


@api_view(["GET"], auth=False)
def leaderboard(request, phase_id):
    phase = board_phase(phase_id=phase_id)
    if phase is None:
        raise Http404
    return board_json_response(request, phase_leaderboard(phase, request.api_user))


@api_view(["GET"], auth=False)
def rank_stability(request, phase_id):
    phase = board_phase(phase_id=phase_id)
    if phase is None:
        raise Http404
    return stability_json_response(rank_stability_view(phase, request.api_user))


def _json_body(request) -> dict:
    import json

    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@api_view(["POST"])
def start_upload(request, phase_id):
    """Begin a direct-to-S3 upload: returns presigned part URLs, or says to post the file."""
    phase, team, refused = _phase_and_team(request, phase_id)
    if refused:
        return refused
    if not uploads.direct_uploads_enabled():
        return JsonResponse({"mode": "post", "url": f"/api/v1/phases/{phase.pk}/submissions"}, status=200)
    body = _json_body(request)
    try:
        started = uploads.start_upload(phase=phase, team=team, user=request.api_user, size=int(body.get("size", 0)),
                                       description=str(body.get("description", "")))
    except (ValueError, TypeError):
        return JsonResponse({"error": "size must be the archive's size in bytes"}, status=400)
    except SubmissionRefused as exc:
        return JsonResponse({"error": str(exc), "code": exc.code}, status=exc.status)
    return JsonResponse({
        "mode": "multipart", "upload": started.pending.pk, "part_size": started.pending.part_size,
        "parts": [{"number": n, "url": url} for n, url in enumerate(started.part_urls, start=1)],
        "finish_url": f"/api/v1/uploads/{started.pending.pk}/finish",
    }, status=201)


@api_view(["POST"])
def finish_upload(request, upload_id):
    pending = get_object_or_404(PendingUpload.objects.select_related("phase", "team"), pk=upload_id,
                                user=request.api_user)
    try:
        submission = uploads.finish_upload(pending=pending, user=request.api_user,
                                           parts=_json_body(request).get("parts") or [])
    except SubmissionRefused as exc:
        return JsonResponse({"error": str(exc), "code": exc.code}, status=exc.status)
    return JsonResponse({"id": submission.pk, "state": submission.state,
                         "status_url": f"/api/v1/submissions/{submission.pk}"}, status=201)
