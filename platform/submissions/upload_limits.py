"""Refuse an oversized archive while it arrives, before it is stored anywhere.

Django parses a multipart body before any view runs (CSRF middleware reads request.POST),
so the phase's size limit is installed as an upload handler first, and the CSRF check runs
after it, inside the wrapper.
"""

from __future__ import annotations

from functools import wraps

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from competitions.models import Phase

MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around the file


class ArchiveTooLarge(FileUploadHandler):
    def __init__(self, request, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):  # noqa: N803
        # Django only stops an upload raised from the chunk loop: note it here, stop at the first chunk.
        if content_length and content_length > self.limit + MULTIPART_OVERHEAD:
            self.request.archive_too_large = content_length

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if getattr(self.request, "archive_too_large", None) or self.received > self.limit:
            self.request.archive_too_large = self.received
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None


def phase_size_limit(view, check_csrf: bool = True):
    """``check_csrf=False`` for views that do their own (the token API)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        phase_id = kwargs.get("phase_id")
        query = Phase.objects.filter(pk=phase_id) if phase_id else Phase.objects.filter(
            challenge__slug=kwargs.get("slug"), slug=kwargs.get("phase"))
        limit = query.values_list("max_archive_bytes", flat=True).first()
        if limit:
            request.upload_handlers.insert(0, ArchiveTooLarge(request, limit))
        return (csrf_protect(view) if check_csrf else view)(request, *args, **kwargs)

    return wrapper
