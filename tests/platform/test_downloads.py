"""A phase's downloads: the input-set zip, landmarks CSV and starting kit built once per input-set version, extra
files from the organizers, who may download them (and from when), and each download recorded."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from competitions import data_selectors, data_services
from competitions.models import Download, PhaseFile
from competitions.services import create_phase, load_input_set
from scoring.inputs import LANDMARKS_HEADER, read_landmarks
from tests.platform.conftest import DEV_PROFILE, INPUT_LAYOUT, PASSWORD, noise_png
from tests.support.env import ROOT

Kind = PhaseFile.Kind


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def built(phase) -> dict[str, PhaseFile]:
    return {f.kind: f for f in data_services.build_phase_data(phase)}


def file_url(phase, phase_file) -> str:
    return reverse("phase-file", args=[phase.challenge.slug, phase.slug, phase_file.pk])


def test_the_input_zip_landmarks_and_kit_hold_the_stored_input_set(loaded_phase, input_folder, tmp_path):
    inputs, landmarks_csv = input_folder
    files = built(loaded_phase)
    assert set(files) == {Kind.INPUTS, Kind.LANDMARKS, Kind.STARTING_KIT}
    for f in files.values():  # size and sha256 are those of the stored bytes
        with default_storage.open(f.file.name, "rb") as handle:
            data = handle.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256)
    with default_storage.open(files[Kind.INPUTS].file.name, "rb") as handle, zipfile.ZipFile(handle) as archive:
        names = archive.namelist()
        assert names == sorted(f"{d}/{s}.png" for d, s in INPUT_LAYOUT.items())
        for name in names:
            assert archive.read(name) == (inputs / name).read_bytes()
    target = tmp_path / "face.csv"
    with default_storage.open(files[Kind.LANDMARKS].file.name, "rb") as handle:
        target.write_bytes(handle.read())
    assert target.read_text().splitlines()[0] == ",".join(LANDMARKS_HEADER)  # val_face.csv's columns
    assert read_landmarks(target) == read_landmarks(landmarks_csv)
    assert files[Kind.LANDMARKS].name == "ntire-dev_face.csv"
    with default_storage.open(files[Kind.STARTING_KIT].file.name, "rb") as handle, zipfile.ZipFile(handle) as kit:
        assert sorted(kit.namelist()) == ["README.md", "sample_submission.zip"]
        assert "<Dataset>/<stem>.png" in kit.read("README.md").decode()


def test_built_once_per_input_set_version(loaded_phase, input_folder, tmp_path, django_capture_on_commit_callbacks):
    inputs, landmarks = input_folder
    first = built(loaded_phase)
    assert built(loaded_phase) == first  # nothing built again
    load_input_set(loaded_phase, inputs, landmarks)  # the same set again: the same version, the same files
    assert data_selectors.input_set_version(loaded_phase) == first[Kind.INPUTS].version
    assert built(loaded_phase) == first
    changed = tmp_path / "changed"
    for n, (dataset, stem) in enumerate(INPUT_LAYOUT.items()):
        noise_png(changed / dataset / f"{stem}.png", seed=900 + n)
    load_input_set(loaded_phase, changed, landmarks)
    assert data_selectors.phase_files(loaded_phase) == []  # the old version is no longer offered
    with django_capture_on_commit_callbacks(execute=True):  # the old files go once the new rows commit
        second = built(loaded_phase)
    assert second[Kind.INPUTS].version != first[Kind.INPUTS].version
    assert second[Kind.INPUTS].sha256 != first[Kind.INPUTS].sha256
    assert PhaseFile.objects.filter(phase=loaded_phase).count() == 3
    assert not any(default_storage.exists(f.file.name) for f in first.values())


def default_queue_builds() -> list[list]:
    """Read (and remove) the build tasks waiting in the broker's default queue: their arguments."""
    from frplatform.celery import app

    found = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        channel.queue_declare(queue="default", durable=True, auto_delete=False, passive=False)
        while (message := channel.basic_get("default", no_ack=True)) is not None:
            if message.headers.get("task") == "competitions.tasks.build_phase_data":
                found.append(list(message.decode()[0]))
    return found


def test_loading_an_input_set_queues_the_build(loaded_phase, input_folder, django_capture_on_commit_callbacks):
    default_queue_builds()
    with django_capture_on_commit_callbacks(execute=True):
        load_input_set(loaded_phase, *input_folder)
    assert [loaded_phase.pk] in default_queue_builds()


def test_download_streams_the_shown_file_and_is_recorded(client, loaded_phase, make_user, organizer):
    files = built(loaded_phase)
    make_user("pat")
    assert client.login(username="pat", password=PASSWORD)
    page = client.get(reverse("phase-detail", args=["ntire", "dev"])).content.decode()
    for f in files.values():
        assert f.sha256 in page and file_url(loaded_phase, f) in page
    response = client.get(file_url(loaded_phase, files[Kind.INPUTS]))
    assert response.status_code == 200 and response.streaming  # never read whole into the web process
    assert 'filename="ntire-dev-inputs.zip"' in response["Content-Disposition"]
    assert hashlib.sha256(body_of(response)).hexdigest() == files[Kind.INPUTS].sha256
    client.get(file_url(loaded_phase, files[Kind.INPUTS]))
    client.get(file_url(loaded_phase, files[Kind.LANDMARKS]))
    rows = list(Download.objects.filter(phase=loaded_phase).values_list("user__username", "kind", "via"))
    assert sorted(rows) == [("pat", "inputs", "web"), ("pat", "inputs", "web"), ("pat", "landmarks", "web")]
    client.force_login(organizer)
    page = client.get(reverse("organizers:phase", args=["ntire", "dev"])).content.decode()
    counts = re.search(r'<tr data-name="ntire-dev-inputs.zip">(.*?)</tr>', page).group(1)
    assert '<td class="downloads">2</td>' in counts and '<td class="people">1</td>' in counts


def test_the_starting_kit_passes_check(client, loaded_phase, make_user, tmp_path):
    files = built(loaded_phase)
    make_user("pat")
    client.login(username="pat", password=PASSWORD)
    with zipfile.ZipFile(io.BytesIO(body_of(client.get(file_url(loaded_phase, files[Kind.INPUTS]))))) as archive:
        archive.extractall(tmp_path / "inputs")
    with zipfile.ZipFile(io.BytesIO(body_of(client.get(file_url(loaded_phase, files[Kind.STARTING_KIT]))))) as kit:
        kit.extractall(tmp_path / "kit")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    checked = subprocess.run([sys.executable, "-m", "scoring", "check", "--inputs", "inputs",
                              "kit/sample_submission.zip"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(INPUT_LAYOUT)} image(s) checked, no problems" in checked.stdout


@pytest.fixture
def test_phase(challenge, storage, input_folder):
    phase = create_phase(challenge=challenge, slug="test", name="Test", scoring_profile=DEV_PROFILE, kind="test",
                         opens_at=timezone.now() + timedelta(days=3))
    load_input_set(phase, *input_folder)
    data_services.build_phase_data(phase)
    data_services.add_extra_file(phase, SimpleUploadedFile("factsheet.tex", b"\\documentclass{article}"),
                                 title="Factsheet", by_user=None)
    return phase


def test_a_test_phases_files_are_unreachable_by_any_id_before_it_opens(client, loaded_phase, test_phase, make_user,
                                                                       organizer):
    built(loaded_phase)
    make_user("pat")
    client.login(username="pat", password=PASSWORD)
    secret = list(PhaseFile.objects.filter(phase=test_phase))
    assert len(secret) == 4
    every_id = sorted(PhaseFile.objects.values_list("pk", flat=True))
    for file_id in [*every_id, max(every_id) + 1]:
        response = client.get(reverse("phase-file", args=["ntire", "test", file_id]))
        assert response.status_code == 404, file_id
    for f in secret:  # nor through the open phase's URL
        assert client.get(reverse("phase-file", args=["ntire", "dev", f.pk])).status_code == 404
    page = client.get(reverse("phase-detail", args=["ntire", "test"])).content.decode()
    assert "available from" in page
    for f in secret:
        assert f.sha256 not in page and f.name not in page
    assert not Download.objects.exists()
    client.force_login(organizer)  # organizers may check their files before the phase opens
    assert client.get(reverse("phase-file", args=["ntire", "test", secret[0].pk])).status_code == 200


def test_anonymous_users_are_refused_every_file(client, loaded_phase, test_phase):
    built(loaded_phase)
    for f in PhaseFile.objects.all():
        response = client.get(reverse("phase-file", args=["ntire", f.phase.slug, f.pk]))
        assert response.status_code in (403, 404)
    assert not Download.objects.exists()


def test_organizers_add_and_remove_extra_files(client, loaded_phase, organizer, make_user):
    url = reverse("organizers:extra-file", args=["ntire", "dev"])
    upload = SimpleUploadedFile("../Factsheet template.docx", b"PK\x03\x04 template")
    make_user("pat")
    client.login(username="pat", password=PASSWORD)
    assert client.post(url, {"title": "Factsheet", "file": upload}).status_code == 403
    client.force_login(organizer)
    upload.seek(0)
    assert client.post(url, {"title": "Factsheet", "file": upload}).status_code == 302
    extra = PhaseFile.objects.get(kind=Kind.EXTRA)
    assert extra.name == "Factsheet_template.docx"
    assert extra.sha256 == hashlib.sha256(b"PK\x03\x04 template").hexdigest()
    client.login(username="pat", password=PASSWORD)
    assert body_of(client.get(file_url(loaded_phase, extra))) == b"PK\x03\x04 template"
    delete = reverse("organizers:extra-file-delete", args=["ntire", "dev", extra.pk])
    assert client.post(delete).status_code == 403
    client.force_login(organizer)
    empty = SimpleUploadedFile("empty.txt", b"")
    response = client.post(url, {"title": "", "file": empty})
    assert response.status_code == 200 and PhaseFile.objects.filter(kind=Kind.EXTRA).count() == 1
    assert client.post(delete).status_code == 302
    assert not PhaseFile.objects.filter(kind=Kind.EXTRA).exists()
    assert client.get(file_url(loaded_phase, extra)).status_code == 404


def test_the_api_lists_and_serves_the_files_with_a_token(client, loaded_phase, test_phase, make_user):
    from accounts.models import ApiToken

    files = built(loaded_phase)
    pat = make_user("pat")
    token = ApiToken.objects.create(user=pat).key
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    listed = client.get(f"/api/v1/phases/{loaded_phase.pk}/data", **auth).json()
    assert listed["scoring_profile"] == DEV_PROFILE and not listed["pending"]
    shown = {f["kind"]: f for f in listed["files"]}
    assert {k: (f["size"], f["sha256"]) for k, f in shown.items()} == {
        k: (f.size, f.sha256) for k, f in files.items()}
    response = client.get(shown["landmarks"]["url"], **auth)
    assert response.status_code == 200 and response.streaming
    assert hashlib.sha256(body_of(response)).hexdigest() == files[Kind.LANDMARKS].sha256
    assert Download.objects.get().via == "api"
    # A wrong token never falls back to the session; no credentials at all is a 401 too.
    client.force_login(pat)
    for headers in ({"HTTP_AUTHORIZATION": "Token wrong"}, {"HTTP_AUTHORIZATION": "Bearer " + token}):
        assert client.get(f"/api/v1/phases/{loaded_phase.pk}/data", **headers).status_code == 401
        assert client.get(shown["inputs"]["url"], **headers).status_code == 401
    client.logout()
    anonymous = client.get(shown["inputs"]["url"])
    assert anonymous.status_code == 401 and "Authorization: Token" in anonymous.json()["error"]
    newcomer = ApiToken.objects.create(user=make_user("newcomer", registered=False)).key
    refused = client.get(f"/api/v1/phases/{loaded_phase.pk}/data", HTTP_AUTHORIZATION=f"Token {newcomer}")
    assert refused.status_code == 403 and refused.json()["error"].startswith("Register for")
    # The test phase, before it opens: 404 for its listing and for each of its files' ids.
    assert client.get(f"/api/v1/phases/{test_phase.pk}/data", **auth).status_code == 404
    for f in PhaseFile.objects.filter(phase=test_phase):
        assert client.get(f"/api/v1/data/{f.pk}", **auth).status_code == 404
    assert client.get("/api/v1/data/999999", **auth).status_code == 404
    assert Download.objects.count() == 1


def every_download_url(phase_files) -> list[str]:
    """Each file's page URL and API URL, and the phase listing's API URL."""
    urls = []
    for f in phase_files:
        urls += [reverse("phase-file", args=[f.phase.challenge.slug, f.phase.slug, f.pk]), f"/api/v1/data/{f.pk}"]
    return urls + sorted({f"/api/v1/phases/{f.phase_id}/data" for f in phase_files})


def assert_refused_everywhere(client, user, phase_files, why: str) -> None:
    from accounts.models import ApiToken

    token = ApiToken.objects.get_or_create(user=user)[0].key
    client.force_login(user)
    for url in every_download_url(phase_files):
        for headers in ({}, {"HTTP_AUTHORIZATION": f"Token {token}"}):
            response = client.get(url, **headers)
            assert response.status_code in (403, 404), (why, url, headers, response.status_code)
    assert not Download.objects.filter(user=user).exists(), why


def test_every_download_url_is_refused_until_approved_and_after_revocation(
        client, loaded_phase, challenge, make_user, organizer, django_capture_on_commit_callbacks):
    from competitions.models import Challenge, Registration
    from competitions.services import create_challenge, decide_registrations, register, revoke_registration

    files = [*built(loaded_phase).values(), data_services.add_extra_file(
        loaded_phase, SimpleUploadedFile("factsheet.tex", b"%tex"), title="Factsheet", by_user=organizer)]
    challenge.registration_mode = Challenge.RegistrationMode.APPROVAL
    challenge.save(update_fields=["registration_mode"])
    newcomer = make_user("newcomer", registered=False)
    assert_refused_everywhere(client, newcomer, files, "before registration")
    page = client.get(reverse("phase-detail", args=["ntire", "dev"])).content.decode()
    assert "Register for" in page and file_url(loaded_phase, files[0]) not in page  # listed, but no links
    registration = register(user=newcomer, challenge=challenge, terms_version=0, full_name="New Comer",
                            affiliation="Somewhere")
    assert registration.status == Registration.Status.PENDING
    assert_refused_everywhere(client, newcomer, files, "before approval")
    other = create_challenge(slug="other", title="Another challenge")
    outsider = make_user("outsider", registered=False)
    from tests.platform.conftest import take_part

    take_part(outsider, other)
    assert_refused_everywhere(client, outsider, files, "another challenge's participant")
    decide_registrations(challenge=challenge, registration_ids=[registration.pk], approve=True, by_user=organizer)
    client.force_login(newcomer)
    for f in files:  # approved: every file downloads
        assert client.get(file_url(loaded_phase, f)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        revoke_registration(challenge=challenge, registration_id=registration.pk, by_user=organizer)
    Download.objects.all().delete()
    assert_refused_everywhere(client, newcomer, files, "after revocation")


def test_organizers_queue_a_build_and_a_bundle_import_queues_one_per_phase(client, loaded_phase, organizer,
                                                                           make_user, tmp_path,
                                                                           django_capture_on_commit_callbacks):
    from organizers import bundles
    from organizers.services import import_bundle

    default_queue_builds()
    url = reverse("organizers:data-build", args=["ntire", "dev"])
    make_user("pat")
    client.login(username="pat", password=PASSWORD)
    assert client.post(url).status_code == 403
    client.force_login(organizer)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url).status_code == 302
    assert default_queue_builds() == [[loaded_phase.pk]]
    bundle = tmp_path / "bundle.zip"
    with open(bundle, "wb") as out:
        bundles.export_bundle(loaded_phase.challenge, out)
    with django_capture_on_commit_callbacks(execute=True):
        imported = import_bundle(bundle, slug="ntire-copy", start=timezone.now(), user=organizer, enqueue=False)
    assert default_queue_builds() == [[imported.challenge.phases.get().pk]]
