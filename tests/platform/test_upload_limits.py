"""The phase's maximum archive size is enforced while the upload arrives, in the form and the API."""

import io

import pytest
from accounts.models import ApiToken
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from competitions.services import create_challenge, create_phase
from submissions.models import Submission
from teams.services import create_team
from tests.platform.conftest import take_part

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    user = get_user_model().objects.create_user("uploader", "u@example.org", "a-Long-passw0rd!")
    challenge = create_challenge(slug="sizes", title="Sizes")
    phase = create_phase(challenge=challenge, slug="dev", name="Dev", scoring_profile="ntire2025-dev",
                         max_archive_bytes=1000)
    take_part(user, challenge)
    create_team(challenge=challenge, name="Big files", user=user)
    return user, phase


def test_form_upload_over_the_limit_is_refused_and_nothing_is_stored(client, setup):
    user, phase = setup
    client.force_login(user)
    response = client.post("/c/sizes/p/dev/submit/", {"archive": SimpleUploadedFile("r.zip", b"x" * 200_000)},
                           follow=True)
    assert "larger than this phase accepts" in response.content.decode()
    assert Submission.objects.count() == 0


def test_api_upload_over_the_limit_gets_413(client, setup):
    user, phase = setup
    token = ApiToken.objects.create(user=user).key
    response = client.post(f"/api/v1/phases/{phase.pk}/submissions",
                           {"archive": io.BytesIO(b"y" * 200_000)}, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 413
    assert "larger than this phase accepts" in response.json()["error"]
    assert Submission.objects.count() == 0


def test_api_upload_within_the_limit_is_accepted(client, setup, django_capture_on_commit_callbacks):
    user, phase = setup
    token = ApiToken.objects.create(user=user).key
    archive = io.BytesIO(b"z" * 500)
    archive.name = "small.zip"
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/api/v1/phases/{phase.pk}/submissions", {"archive": archive},
                               HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 201, response.content
    assert Submission.objects.get().archive_size == 500
