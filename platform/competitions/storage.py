"""Large stored files reach participants without passing through a web process: with S3 storage a short-lived
presigned GET URL, with local storage a streamed response read in blocks."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, HttpResponseRedirect

DOWNLOAD_URL_LIFETIME = 300  # seconds a presigned download URL works
logger = logging.getLogger(__name__)


def remove_stored(names: Iterable[str]) -> None:
    """Delete stored files after a failed or superseded write. A file that cannot be removed is logged and
    left: an orphan is harmless, and the error that led here is the one to keep."""
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not remove the stored file %s", name, exc_info=True)


def sha256_of_upload(upload: File) -> str:
    """The sha256 of an uploaded file, read in Django's chunks and rewound for whoever stores it next."""
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def sha256_of_stored(name: str) -> str:
    """The sha256 of a stored file, read in blocks (S3 or local storage alike)."""
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def s3_storage() -> bool:
    return bool(settings.S3_BUCKET)


def presigning_client():
    """A client signing (Signature Version 4, which every S3 server takes with response-header overrides) for
    the address participants reach: FR_S3_PUBLIC_ENDPOINT_URL when it differs from the internal one, as a
    signature covers the host."""
    endpoint = settings.S3_PUBLIC_ENDPOINT_URL or default_storage.endpoint_url
    return _client(endpoint, settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY, settings.S3_REGION)


@functools.cache  # one client per configuration: building one costs milliseconds, and settings may change in tests
def _client(endpoint: str | None, key_id: str | None, secret: str | None, region: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret,
                        region_name=region, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def open_s3_clients() -> None:
    """Build the S3 clients now rather than on a web worker's first upload or download: each worker then pays
    botocore's import and its memory once at start, and a first participant does not wait for it. The signing
    client is the process's; django-storages' is this thread's (a sync worker's only one)."""
    if s3_storage():
        default_storage.connection  # noqa: B018 - django-storages builds its client on first access
        presigning_client()


def presigned_get_url(name: str, filename: str, lifetime: int = DOWNLOAD_URL_LIFETIME) -> str:
    return presigning_client().generate_presigned_url("get_object", ExpiresIn=lifetime, Params={
        "Bucket": default_storage.bucket_name, "Key": name,
        "ResponseContentDisposition": f'attachment; filename="{filename}"',
    })


def file_download(name: str, filename: str, content_type: str | None = None) -> HttpResponse:
    """A redirect to a presigned URL (S3), or the stored file streamed in blocks (local storage)."""
    if s3_storage():
        response: HttpResponse = HttpResponseRedirect(presigned_get_url(name, filename))
    else:
        response = FileResponse(default_storage.open(name, "rb"), as_attachment=True, filename=filename,
                                content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    return response
