"""Direct-to-S3 uploads: the web process signs requests and never reads the archive.

start: check the limits, open an S3 multipart upload, hand out one presigned URL per part.
finish: complete the multipart upload, check the stored size, create the submission.
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
from competitions.permissions import participation_refusal
from submissions import services, transitions
from submissions.models import PendingUpload, Submission
from teams.models import Team

MIN_PART = 8 * 1024 * 1024  # S3 requires at least 5 MiB per part but the last
MAX_PARTS = 10_000
URL_LIFETIME = 6 * 3600


class UploadError(services.SubmissionRefused):
    pass


def direct_uploads_enabled() -> bool:
    return bool(settings.S3_BUCKET)


def _s3():
    """The boto3 client and bucket behind the default storage (django-storages' S3Storage)."""
    return default_storage.connection.meta.client, default_storage.bucket_name


def _presigner():
    """Signs URLs for the address participants reach (FR_S3_PUBLIC_ENDPOINT_URL), which may differ
    from the internal one the platform talks to; a signature covers the host."""
    public = settings.S3_PUBLIC_ENDPOINT_URL
    if not public:
        return _s3()[0]
    import boto3

    return boto3.client("s3", endpoint_url=public, aws_access_key_id=settings.S3_ACCESS_KEY_ID,
                        aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY, region_name=settings.S3_REGION)


@dataclass
class StartedUpload:
    pending: PendingUpload
    part_urls: list[str]


def start_upload(*, phase: Phase, team: Team, user, size: int, description: str = "") -> StartedUpload:
    if not direct_uploads_enabled():
        raise UploadError("Direct uploads need S3 storage; send the archive to the submissions endpoint instead.")
    if not phase.is_open():
        raise UploadError(f"The phase {phase.name} is not open for submissions.")
    if team.disqualified:
        raise UploadError("This team has been disqualified from the challenge.")
    refusal = participation_refusal(user, phase.challenge)
    if refusal:
        raise UploadError(refusal)
    if size <= 0:
        raise UploadError("The archive is empty.")
    if size > phase.max_archive_bytes:
        raise UploadError(
            f"The archive is {size / 1e6:.1f} MB; this phase accepts at most {phase.max_archive_bytes / 1e6:.1f} MB."
        )
    refusal = services.quota_status(phase, team, user).refusal()
    if refusal:
        raise UploadError(refusal)
    part_size = max(MIN_PART, math.ceil(size / MAX_PARTS))
    parts = math.ceil(size / part_size)
    key = f"submissions/{timezone.now():%Y/%m}/{phase.pk}-{team.pk}-{uuid.uuid4().hex}.zip"
    client, bucket = _s3()
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/zip")["UploadId"]
    pending = PendingUpload.objects.create(phase=phase, team=team, user=user, key=key, s3_upload_id=upload_id,
                                           size=size, part_size=part_size, description=description[:300])
    signer = _presigner()
    urls = [
        signer.generate_presigned_url(
            "upload_part", ExpiresIn=URL_LIFETIME,
            Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
        )
        for number in range(1, parts + 1)
    ]
    return StartedUpload(pending, urls)


def finish_upload(*, pending: PendingUpload, user, parts: list[dict]) -> Submission:
    if pending.user_id != user.pk:
        raise UploadError("This upload was started by someone else.")
    if pending.submission_id:
        return pending.submission  # finish called twice (a retried request): same submission
    client, bucket = _s3()
    try:
        ordered = sorted(({"PartNumber": int(p["number"]), "ETag": str(p["etag"])} for p in parts),
                         key=lambda p: p["PartNumber"])
    except (KeyError, TypeError, ValueError):
        raise UploadError("parts must be a list of {number, etag}") from None
    try:
        client.complete_multipart_upload(Bucket=bucket, Key=pending.key, UploadId=pending.s3_upload_id,
                                         MultipartUpload={"Parts": ordered})
    except client.exceptions.ClientError as exc:
        raise UploadError(f"The storage refused to assemble the archive: {exc}") from None
    stored = client.head_object(Bucket=bucket, Key=pending.key)["ContentLength"]
    phase = pending.phase
    refusal = participation_refusal(user, phase.challenge)  # revoked, or the terms changed, since the start
    if refusal:
        client.delete_object(Bucket=bucket, Key=pending.key)
        raise UploadError(refusal)
    if stored != pending.size or stored > phase.max_archive_bytes:
        client.delete_object(Bucket=bucket, Key=pending.key)
        raise UploadError(f"The stored archive has {stored} bytes; {pending.size} were announced.")
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=pending.team_id)
        refusal = services.quota_status(phase, pending.team, user).refusal()
        if refusal:
            client.delete_object(Bucket=bucket, Key=pending.key)
            raise UploadError(refusal)
        submission = Submission.objects.create(
            phase=phase, team=pending.team, submitted_by=user, description=pending.description,
            archive=pending.key, archive_size=stored,
        )
        PendingUpload.objects.filter(pk=pending.pk).update(submission=submission)
        transitions.log(submission.pk, f"Archive received directly in storage: {stored} bytes.")
        transaction.on_commit(lambda: services.enqueue_scoring(submission.pk))
    return submission


# An upload not finished this long after it started can never be: its part URLs have expired
# (URL_LIFETIME), and the grace covers a finish request still on its way.
ABANDONED_AFTER = URL_LIFETIME + 3600


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
    """Abort every upload started more than ABANDONED_AFTER ago and never finished; how many."""
    if not direct_uploads_enabled():
        return 0
    cutoff = (now or timezone.now()) - timedelta(seconds=ABANDONED_AFTER)
    aborted = 0
    for pending in PendingUpload.objects.filter(submission__isnull=True, created_at__lt=cutoff).order_by("pk"):
        abort_upload(pending)
        aborted += 1
    return aborted
