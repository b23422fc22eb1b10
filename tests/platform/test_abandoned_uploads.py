"""The watchdog aborts direct uploads abandoned past their URLs' lifetime, on a real S3 server (SeaweedFS)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from submissions import uploads, watchdog
from submissions.models import PendingUpload
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, SeaweedS3

pytestmark = pytest.mark.slow
PART = b"x" * (5 * 1024 * 1024)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture
def s3_storage(settings, s3_server):
    settings.S3_BUCKET = s3_server.bucket
    settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY = ACCESS_KEY, SECRET_KEY
    settings.S3_PUBLIC_ENDPOINT_URL = ""
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": s3_server.bucket, "endpoint_url": s3_server.endpoint, "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY, "region_name": "us-east-1", "default_acl": None, "file_overwrite": False,
        "addressing_style": "path"}}}
    return s3_server.client()


def started(phase, team, age: timedelta) -> PendingUpload:
    upload = uploads.start_upload(phase=phase, team=team, user=team.created_by, size=len(PART) * 2)
    response = requests.put(upload.part_urls[0], data=PART, timeout=30)  # as scoring/client.py sends a part
    assert response.status_code == 200, response.text
    PendingUpload.objects.filter(pk=upload.pending.pk).update(created_at=timezone.now() - age)
    return upload.pending


def open_uploads(client, bucket: str) -> set[str]:
    return {u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}


def test_watchdog_aborts_uploads_past_their_urls_lifetime(s3_storage, s3_server, phase, make_team):
    team = make_team("Alpha")
    old = started(phase, team, timedelta(seconds=uploads.url_lifetime() + 3601))
    fresh = started(phase, team, timedelta(minutes=5))
    assert {old.s3_upload_id, fresh.s3_upload_id} <= open_uploads(s3_storage, s3_server.bucket)
    assert s3_storage.list_parts(Bucket=s3_server.bucket, Key=old.key, UploadId=old.s3_upload_id)["Parts"]

    assert watchdog.sweep()["uploads_aborted"] == 1
    remaining = open_uploads(s3_storage, s3_server.bucket)
    assert old.s3_upload_id not in remaining and fresh.s3_upload_id in remaining
    assert list(PendingUpload.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert watchdog.sweep()["uploads_aborted"] == 0  # nothing left to do


def test_an_upload_the_storage_forgot_only_loses_its_row(s3_storage, s3_server, phase, make_team):
    team = make_team("Alpha")
    gone = started(phase, team, timedelta(days=2))
    s3_storage.abort_multipart_upload(Bucket=s3_server.bucket, Key=gone.key, UploadId=gone.s3_upload_id)
    assert watchdog.sweep()["uploads_aborted"] == 1
    assert not PendingUpload.objects.filter(pk=gone.pk).exists()
