"""The submission endpoints of the JSON API (a router of frplatform.api): a few lines over services.

Refusals raise submissions.refusals.SubmissionRefused; frplatform.api's one handler answers their status.
"""

from __future__ import annotations

from typing import Any, Literal

from accounts.api_auth import ErrorOut, token_auth, token_user
from accounts.ratelimit import upload_limit
from django.http import Http404
from django.shortcuts import get_object_or_404
from ninja import File, Form, Router, Schema, Status
from ninja.decorators import decorate_view
from ninja.files import UploadedFile

from competitions.models import Phase
from submissions import selectors, services, uploads
from submissions.models import PendingUpload, Submission
from submissions.refusals import Refusal, SubmissionRefused
from submissions.upload_limits import phase_size_limit
from teams.services import team_of

router = Router(tags=["submissions"], auth=token_auth)


def _hourly_upload_limit(view):
    return upload_limit(view, identity=token_user, json=True)


def _size_limit(view):
    return phase_size_limit(view, check_csrf=False)  # the auth class checks a session's CSRF token


class RefusalOut(ErrorOut):
    code: Refusal | None = None


class CreatedOut(Schema):
    id: int
    state: str
    status_url: str


class ProgressOut(Schema):
    done: int
    total: int


class LogLineOut(Schema):
    at: str
    state: str
    message: str


class DatasetResultOut(Schema):
    metrics: dict[str, float | None]
    id_similarity: float
    failed_images: int
    image_count: int


class ResultOut(Schema):
    total: float
    failed_images: int
    id_valid: bool
    id_similarity: float
    metrics: dict[str, float | None]
    terms: dict[str, float | None]
    official_weights: bool
    weights: dict[str, str]
    versions: dict[str, Any]
    datasets: dict[str, DatasetResultOut]


class SubmissionOut(Schema):
    id: int
    phase: str
    team: str
    state: Submission.State
    final: bool
    created_at: str
    finished_at: str | None
    progress: ProgressOut
    error: str
    log: list[LogLineOut]
    result: ResultOut | None = None  # absent until scored, and while the phase hides its scores


class StartUploadIn(Schema):
    size: int
    description: str = ""


class PartUrlOut(Schema):
    number: int
    url: str


class MultipartOut(Schema):
    mode: Literal["multipart"]
    upload: int
    part_size: int
    parts: list[PartUrlOut]
    finish_url: str


class PostInsteadOut(Schema):
    mode: Literal["post"]
    url: str


class PartIn(Schema):
    number: int
    etag: str


class FinishUploadIn(Schema):
    parts: list[PartIn] = []


def _created(submission: Submission) -> Status:
    return Status(201, {"id": submission.pk, "state": submission.state,
                 "status_url": f"/api/v1/submissions/{submission.pk}"})


def _phase_and_team(request, phase_id: int):
    phase = get_object_or_404(Phase.objects.select_related("challenge"), pk=phase_id)
    team = team_of(request.auth, phase.challenge)
    if team is None:
        raise SubmissionRefused(Refusal.NO_TEAM)
    return phase, team


@router.post("/phases/{int:phase_id}/submissions", url_name="api-submit",
             response={201: CreatedOut, 400: RefusalOut, 401: ErrorOut, 403: RefusalOut, 404: ErrorOut,
                       409: RefusalOut, 413: RefusalOut, 429: RefusalOut},
             summary="Submit an archive in one request: multipart/form-data with the zip in the field 'archive' "
                     "(and optionally 'description').")
@decorate_view(_hourly_upload_limit, _size_limit)
def submit(request, phase_id: int, archive: File[UploadedFile] = None, description: Form[str] = ""):
    phase = get_object_or_404(Phase.objects.select_related("challenge"), pk=phase_id)
    return _created(services.submit_archive(
        phase=phase, user=request.auth, archive=archive, description=description,
        too_large=bool(getattr(request, "archive_too_large", None))))


@router.get("/submissions/{int:pk}", url_name="api-submission", exclude_unset=True,
            response={200: SubmissionOut, 401: ErrorOut, 404: ErrorOut},
            summary="A submission of your team: state, progress, log and, once scored and where the phase shows "
                    "them, its scores.")
def submission(request, pk: int):
    sub = get_object_or_404(Submission.objects.select_related("phase__challenge", "team"), pk=pk)
    if not selectors.can_view_submission(request.auth, sub):
        raise Http404  # 404, not 403: do not confirm that the id exists
    return selectors.submission_status(sub, include_scores=selectors.scores_visible_to_team(sub, request.auth))


@router.post("/phases/{int:phase_id}/uploads", url_name="api-upload-start",
             response={200: PostInsteadOut, 201: MultipartOut, 400: RefusalOut, 401: ErrorOut, 403: RefusalOut,
                       404: ErrorOut, 409: RefusalOut, 413: RefusalOut, 422: ErrorOut, 429: RefusalOut},
             summary="Start an upload. With S3 storage, 201 and presigned part URLs; otherwise 200 and the "
                     "endpoint to post the file to.")
@decorate_view(_hourly_upload_limit)
def start_upload(request, phase_id: int, body: StartUploadIn):
    phase, team = _phase_and_team(request, phase_id)
    if not uploads.direct_uploads_enabled():
        return Status(200, {"mode": "post", "url": f"/api/v1/phases/{phase.pk}/submissions"})
    started = uploads.start_upload(phase=phase, team=team, user=request.auth, size=body.size,
                                   description=body.description)
    return Status(201, {
        "mode": "multipart", "upload": started.pending.pk, "part_size": started.pending.part_size,
        "parts": [{"number": n, "url": url} for n, url in enumerate(started.part_urls, start=1)],
        "finish_url": f"/api/v1/uploads/{started.pending.pk}/finish",
    })


@router.post("/uploads/{int:upload_id}/finish", url_name="api-upload-finish",
             response={201: CreatedOut, 400: RefusalOut, 401: ErrorOut, 403: RefusalOut, 404: ErrorOut,
                       409: RefusalOut, 413: RefusalOut, 422: ErrorOut, 429: RefusalOut},
             summary="Finish a multipart upload: the archive becomes a submission (every rule is checked again).")
def finish_upload(request, upload_id: int, body: FinishUploadIn):
    pending = get_object_or_404(PendingUpload.objects.select_related("phase", "team"), pk=upload_id,
                                user=request.auth)
    return _created(uploads.finish_upload(pending=pending, user=request.auth,
                                          parts=[part.dict() for part in body.parts]))
