"""A phase's downloads on the site: the files section of the phase page and the download URL."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from competitions import data_selectors, data_services, permissions
from competitions.models import Phase, PhaseFile
from competitions.storage import file_download


def data_context(user, phase: Phase) -> dict:
    """The phase page's "Data" section: the files (listed unless the phase hides them), whether links work."""
    refusal = permissions.data_refusal(user, phase)
    files = [] if refusal and refusal.hidden else data_selectors.phase_files(phase)
    return {"data_files": files, "data_refusal": refusal, "data_pending": data_selectors.data_pending(phase, files)}


def allowed_file(user, phase: Phase, file_id: int) -> PhaseFile:
    """The phase's file ``file_id`` for this user: Http404 for an unknown id and for a phase that hides its files,
    PermissionDenied (403) with the reason otherwise."""
    refusal = permissions.data_refusal(user, phase)
    if refusal and refusal.hidden:
        raise Http404("No such file.")
    found = data_selectors.phase_file(phase, file_id)
    if found is None:
        raise Http404("No such file.")
    if refusal:
        raise PermissionDenied(refusal.message)
    return found


def send_file(user, phase_file: PhaseFile, via: str) -> HttpResponse:
    data_services.record_download(phase_file, user, via)
    content_type = "text/csv" if phase_file.name.endswith(".csv") else None
    return file_download(phase_file.file.name, phase_file.name, content_type)


@require_GET
def phase_file_download(request: HttpRequest, slug: str, phase: str, file_id: int) -> HttpResponse:
    found = get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)
    return send_file(request.user, allowed_file(request.user, found, file_id), "web")
