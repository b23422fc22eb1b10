"""The downloads over the API (django-ninja): a phase's files, and one file (a presigned redirect with S3 storage,
else streamed). A router of frplatform.api; its errors answer ``{"error": message}`` through that API's handlers."""

from __future__ import annotations

from accounts.api_auth import ErrorOut, token_auth
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Router, Schema
from ninja.errors import HttpError

from competitions import data_selectors, permissions
from competitions.data_views import allowed_file, send_file
from competitions.models import Phase, PhaseFile


class FileOut(Schema):
    id: int
    kind: str
    name: str
    title: str
    size: int
    sha256: str
    url: str


class PhaseDataOut(Schema):
    phase: int
    challenge: str
    name: str
    scoring_profile: str
    pending: bool  # the input set's files are still being built
    files: list[FileOut]


router = Router(auth=token_auth, tags=["data"])


def _phase(phase_id: int) -> Phase:
    return get_object_or_404(Phase.objects.select_related("challenge"), pk=phase_id)


REFUSALS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut}


@router.get("/phases/{int:phase_id}/data", response={200: PhaseDataOut, **REFUSALS}, url_name="api-phase-data",
            summary="A phase's downloads (input-set zip, landmarks CSV, starting kit, extra files): size, sha256, url."
                    " For registered, approved participants from the phase's opening date; 404 before it.")
def phase_data(request: HttpRequest, phase_id: int):
    phase = _phase(phase_id)
    refusal = permissions.data_refusal(request.auth, phase)
    if refusal and refusal.hidden:
        raise Http404
    if refusal:
        raise HttpError(403, refusal.message)
    files = data_selectors.phase_files(phase)
    prefix = request.path.rsplit("/phases/", 1)[0]  # wherever the router is mounted
    return {"phase": phase.pk, "challenge": phase.challenge.slug, "name": phase.name,
            "scoring_profile": phase.scoring_profile, "pending": data_selectors.data_pending(phase, files),
            "files": [{"id": f.pk, "kind": f.kind, "name": f.name, "title": f.title, "size": f.size,
                       "sha256": f.sha256, "url": f"{prefix}/data/{f.pk}"} for f in files]}


# 200: the file's bytes (local storage), 302: a presigned URL (S3); neither has a JSON body.
@router.get("/data/{int:file_id}", response={200: None, 302: None, **REFUSALS}, url_name="api-data-file",
            summary="One file: a redirect to a short-lived presigned storage URL (fetch it without the token), or the"
                    " file itself with local storage. Each download is recorded.")
def data_file(request: HttpRequest, file_id: int) -> HttpResponse:
    found = PhaseFile.objects.select_related("phase__challenge").filter(pk=file_id).first()
    if found is None:
        raise Http404
    try:
        allowed = allowed_file(request.auth, found.phase, file_id)
    except PermissionDenied as exc:  # as an HttpError, which any NinjaAPI answers
        raise HttpError(403, str(exc)) from None
    return send_file(request.auth, allowed, "api")
