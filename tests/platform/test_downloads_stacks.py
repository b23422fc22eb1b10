"""Downloads through real stacks (gunicorn and a Celery worker): with S3 storage (SeaweedFS) the files are built into
the bucket and every download is a presigned redirect (no byte passes through the web process); on the embedded
default (SQLite, its own broker, local files) the worker builds them too and the web streams them. The CLI verifies
both."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile

import pytest
import requests

from tests.support.data_stack import phase_listing, registered_participant, set_up_phase_data
from tests.support.env import ROOT, subset_of_validation
from tests.support.s3 import SeaweedS3
from tests.support.stack import LiveStack, WebUser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


def test_s3_downloads_are_presigned_redirects_and_verified_by_the_cli(s3, tmp_path, weights_dir):
    inputs, landmarks = subset_of_validation(tmp_path, per_dataset=2)
    stack = LiveStack("services", tmp_path / "stack", weights_dir, extra_env={**s3.env(), "FR_PRELOAD_MODELS": "0"})
    try:
        phase_id = set_up_phase_data(stack, inputs, landmarks)
        stack.start_web()
        dana, token = registered_participant(stack, "dana")
        listing = phase_listing(dana, token, phase_id)
        files = {f["kind"]: f for f in listing["files"]}
        keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="downloads/")["Contents"]]
        assert len(keys) == 3  # the built files live in the bucket

        for headers, url in (({"Authorization": f"Token {token}"}, stack.url + files["inputs"]["url"]),
                             ({}, f"{stack.url}/c/ntire/p/dev/data/{files['inputs']['id']}/")):
            answer = dana.http.get(url, headers=headers, allow_redirects=False, timeout=30)
            assert answer.status_code == 302 and answer.content == b"", (url, answer.status_code)
            location = answer.headers["Location"]
            assert location.startswith(f"{s3.endpoint}/{s3.bucket}/downloads/") and "X-Amz-Signature=" in location
            body = requests.get(location, timeout=60)  # the presigned URL needs no session and no token
            assert body.ok and hashlib.sha256(body.content).hexdigest() == files["inputs"]["sha256"]
            assert 'filename="ntire-dev-inputs.zip"' in body.headers.get("Content-Disposition", "")
        outsider = WebUser(stack.url)
        outsider.sign_up("olga")  # signed up, not registered
        refused = outsider.http.get(f"{stack.url}/c/ntire/p/dev/data/{files['inputs']['id']}/", allow_redirects=False,
                                    timeout=30)
        assert refused.status_code == 403 and "Location" not in refused.headers

        done = subprocess.run([sys.executable, "-m", "scoring", "download", "--server", stack.url, "--token", token,
                               "--phase", str(phase_id), "--out", str(tmp_path / "data")], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        got = sorted(p.relative_to(tmp_path / "data/inputs").as_posix()
                     for p in (tmp_path / "data/inputs").rglob("*.png"))
        assert got == sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*.png"))
        with zipfile.ZipFile(tmp_path / "data/ntire-dev-inputs.zip") as archive:
            assert archive.read(got[0]) == (inputs / got[0]).read_bytes()
        # The landmarks CSV: val_face.csv's rows for these inputs (the same header and values).
        served = (tmp_path / "data/ntire-dev_face.csv").read_text().splitlines()
        given = landmarks.read_text().splitlines()
        assert served[0] == given[0] and sorted(served[1:]) == sorted(given[1:])
        counted = stack.shell("from competitions.models import Download; print(Download.objects.count())")
        assert counted.strip().splitlines()[-1] == "4"  # two redirects, two CLI files
    finally:
        stack.close()


def test_the_embedded_default_builds_and_streams_the_downloads(tmp_path, weights_dir):
    inputs, landmarks = subset_of_validation(tmp_path, per_dataset=1)
    stack = LiveStack("embedded", tmp_path / "stack", weights_dir, extra_env={"FR_PRELOAD_MODELS": "0"})
    try:
        phase_id = set_up_phase_data(stack, inputs, landmarks)
        stack.start_web()
        dana, token = registered_participant(stack, "dana")
        files = {f["kind"]: f for f in phase_listing(dana, token, phase_id)["files"]}
        answer = dana.http.get(f"{stack.url}/c/ntire/p/dev/data/{files['inputs']['id']}/", timeout=60)
        assert answer.status_code == 200 and not answer.history  # streamed by the web, no redirect
        assert hashlib.sha256(answer.content).hexdigest() == files["inputs"]["sha256"]
        assert int(answer.headers["Content-Length"]) == files["inputs"]["size"]
        done = subprocess.run([sys.executable, "-m", "scoring", "download", "--server", stack.url, "--token", token,
                               "--phase", str(phase_id), "--out", str(tmp_path / "data")], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert len(list((tmp_path / "data/inputs").rglob("*.png"))) == len(list(inputs.rglob("*.png")))
    finally:
        stack.close()
