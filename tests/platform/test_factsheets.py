"""A test-phase entry carries its factsheet (PDF) and code link; only the team attaches them."""

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from competitions.services import create_challenge, create_phase
from submissions.models import Submission
from submissions.services import create_submission
from teams.services import create_team
from tests.platform.conftest import take_part

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def entry():
    users = [get_user_model().objects.create_user(n, f"{n}@example.org", "a-Long-passw0rd!") for n in ("ann", "ben")]
    challenge = create_challenge(slug="fs", title="FS")
    phase = create_phase(challenge=challenge, slug="test", name="Test", kind="test", scoring_profile="ntire2025-dev")
    for user in users:
        take_part(user, challenge)
    team = create_team(challenge=challenge, name="Ann's team", user=users[0])
    create_team(challenge=challenge, name="Ben's team", user=users[1])
    submission = create_submission(phase=phase, team=team, user=users[0], enqueue=False,
                                   upload=ContentFile(b"PK\x05\x06" + bytes(18), name="r.zip"))
    return submission, users


def test_team_attaches_a_pdf_and_a_code_link(client, entry):
    submission, (ann, _ben) = entry
    Submission.objects.filter(pk=submission.pk).update(verified=True)
    client.force_login(ann)
    response = client.post(f"/submissions/{submission.pk}/factsheet/", {
        "factsheet": SimpleUploadedFile("factsheet.pdf", PDF, content_type="application/pdf"),
        "code_url": "https://github.com/example/restorer",
    }, follow=True)
    assert "Factsheet and code link saved" in response.content.decode()
    submission.refresh_from_db()
    assert submission.code_url == "https://github.com/example/restorer"
    assert submission.factsheet.read() == PDF
    assert submission.verified is False  # a changed entry must be verified again


@pytest.mark.parametrize(("data", "message"), [
    (b"MZ\x90\x00 not a pdf", "must be a PDF"),
    (PDF, "https:// URL"),
])
def test_bad_factsheets_are_refused_and_nothing_is_stored(client, entry, data, message):
    submission, (ann, _ben) = entry
    client.force_login(ann)
    code_url = "javascript:alert(1)" if message == "https:// URL" else ""
    response = client.post(f"/submissions/{submission.pk}/factsheet/", {
        "factsheet": SimpleUploadedFile("f.pdf", data), "code_url": code_url}, follow=True)
    assert message in response.content.decode()
    submission.refresh_from_db()
    assert not submission.factsheet and submission.code_url == ""


def test_another_team_cannot_attach_anything(client, entry):
    submission, (_ann, ben) = entry
    client.force_login(ben)
    response = client.post(f"/submissions/{submission.pk}/factsheet/", {
        "factsheet": SimpleUploadedFile("f.pdf", PDF), "code_url": "https://evil.example.org"})
    assert response.status_code == 404
    submission.refresh_from_db()
    assert not submission.factsheet and submission.code_url == ""
