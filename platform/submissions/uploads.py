"""Direct-to-S3 uploads: the web process signs requests and never reads the archive.

start: check the limits, open an S3 multipart upload, hand out one presigned URL per part.
finish: complete the multipart upload, check the stored size, create the submission (services.create_submission).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from competitions.models import Phase
from competitions.storage import presigning_client, s3_storage
from submissions import services
from submissions.models import PendingUpload, Submission
from submissions.refusals import Refusal, SubmissionRefused
from teams.models import Team

MIN_PART = 8 * 1024 * 1024  # S3 requires at least 5 MiB per part but the last
MAX_PARTS = 10_000


def direct_uploads_enabled() -> bool:
    return s3_storage()


def _s3():
    """The boto3 client and bucket behind the default storage (django-storages' S3Storage)."""
    return default_storage.connection.meta.client, default_storage.bucket_name


@dataclass
class StartedUpload:
    pending: PendingUpload
    part_urls: list[str]


def url_lifetime() -> int:
    """Seconds a part URL works (FR_UPLOAD_URL_LIFETIME)."""
    return settings.FR_UPLOAD_URL_LIFETIME


def start_upload(*, phase: Phase, team: Team, user, size: int, description: str = "") -> StartedUpload:
    """Run every rule of a new submission (services.check_submission) on the announced size, then open the
    multipart upload. finish_upload runs the same rules again: the phase may close, the team may use its
    quota or the user leave it while the parts travel."""
    if not direct_uploads_enabled():
        raise SubmissionRefused(Refusal.DIRECT_UPLOADS_OFF)
    services.check_submission(phase=phase, team=team, user=user, size=size)
    part_size = max(MIN_PART, math.ceil(size / MAX_PARTS))
    parts = math.ceil(size / part_size)
    key = f"submissions/{timezone.now():%Y/%m}/{phase.pk}-{team.pk}-{uuid.uuid4().hex}.zip"
    client, bucket = _s3()
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/zip")["UploadId"]
    pending = PendingUpload.objects.create(phase=phase, team=team, user=user, key=key, s3_upload_id=upload_id,
                                           size=size, part_size=part_size, description=description[:300])
    signer = presigning_client()
    urls = [
        signer.generate_presigned_url(
            "upload_part", ExpiresIn=url_lifetime(),
            Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
        )
        for number in range(1, parts + 1)
    ]
    return StartedUpload(pending, urls)


def finish_upload(*, pending: PendingUpload, user, parts: list[dict]) -> Submission:
    """Assemble the parts, check the stored size, and create the submission through services.create_submission
    (every rule again). A refused archive is deleted from the bucket."""
    if pending.user_id != user.pk:
        raise SubmissionRefused(Refusal.UPLOAD_NOT_YOURS)
    if pending.submission_id:
        return pending.submission  # finish called twice (a retried request): same submission
    client, bucket = _s3()
    try:
        ordered = sorted(({"PartNumber": int(p["number"]), "ETag": str(p["etag"])} for p in parts),
                         key=lambda p: p["PartNumber"])
    except (KeyError, TypeError, ValueError):
        raise SubmissionRefused(Refusal.BAD_PARTS) from None
    try:
        client.complete_multipart_upload(Bucket=bucket, Key=pending.key, UploadId=pending.s3_upload_id,
                                         MultipartUpload={"Parts": ordered})
    except client.exceptions.ClientError as exc:
        raise SubmissionRefused(Refusal.STORAGE_REFUSED, detail=exc) from None
    stored = client.head_object(Bucket=bucket, Key=pending.key)["ContentLength"]
    if stored != pending.size:
        client.delete_object(Bucket=bucket, Key=pending.key)
        raise SubmissionRefused(Refusal.SIZE_MISMATCH, stored=stored, announced=pending.size)
    try:
        with transaction.atomic():  # the submission and its link to this upload, together
            submission = services.create_submission(
                phase=pending.phase, team=pending.team, user=user, description=pending.description,
                upload=services.StoredArchive(pending.key, stored))
            PendingUpload.objects.filter(pk=pending.pk).update(submission=submission)
    except SubmissionRefused:
        client.delete_object(Bucket=bucket, Key=pending.key)
        raise
    return submission


def abandoned_after() -> int:
    """An upload not finished this long after it started can never be: its part URLs have expired
    (url_lifetime), and the hour's grace covers a finish request still on its way."""
    return url_lifetime() + 3600


def abort_upload(pending: PendingUpload) -> None:
    """Drop an unfinished upload: its parts in the bucket and its row. An upload the storage no longer
    knows (aborted already, or expired by a bucket lifecycle rule) only loses its row."""
    client, bucket = _s3()
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=pending.key, UploadId=pending.s3_upload_id)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
            raise
    PendingUpload.objects.filter(pk=pending.pk, submission__isnull=True).delete()


def abort_abandoned(now=None) -> int:
    """Abort every upload started more than abandoned_after() seconds ago and never finished; how many."""
    if not direct_uploads_enabled():
        return 0
    cutoff = (now or timezone.now()) - timedelta(seconds=abandoned_after())
    aborted = 0
    for pending in PendingUpload.objects.filter(submission__isnull=True, created_at__lt=cutoff).order_by("pk"):
        abort_upload(pending)
        aborted += 1
    return aborted
