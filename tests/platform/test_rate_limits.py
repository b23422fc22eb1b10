"""Login, signup and upload rate limits answer 429 with Retry-After once exceeded."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from tests.platform.conftest import take_part

pytestmark = pytest.mark.django_db


def test_login_attempts_beyond_the_limit_are_refused(client):
    get_user_model().objects.create_user("target", "t@example.org", "the-Right-passw0rd")
    statuses = [client.post("/accounts/login/", {"username": "target", "password": f"wrong-{i}"}).status_code
                for i in range(12)]
    assert statuses[:10] == [200] * 10  # the form again, with an error
    assert statuses[10:] == [429, 429]
    refused = client.post("/accounts/login/", {"username": "target", "password": "the-Right-passw0rd"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session  # even the right password waits out the window


def test_upload_rate_limit_per_user(client, settings):
    from competitions.services import create_challenge, create_phase
    from teams.services import create_team

    settings.FR_UPLOAD_RATE = (2, 3600)
    user = get_user_model().objects.create_user("busy", "b@example.org", "a-Long-passw0rd!")
    challenge = create_challenge(slug="rl", title="RL")
    create_phase(challenge=challenge, slug="dev", name="Dev", scoring_profile="ntire2025-dev")
    take_part(user, challenge)
    create_team(challenge=challenge, name="Busy", user=user)
    client.force_login(user)
    codes = [client.post("/c/rl/p/dev/submit/", {}).status_code for _ in range(3)]
    assert codes[:2] == [302, 302] and codes[2] == 429


def test_a_failed_run_emails_the_reason_and_no_score(settings):
    from django.core.files.base import ContentFile

    from competitions.services import create_challenge, create_phase
    from submissions import pipeline
    from submissions.models import Submission
    from submissions.services import create_submission
    from teams.services import create_team

    user = get_user_model().objects.create_user("mailme", "mailme@example.org", "a-Long-passw0rd!")
    challenge = create_challenge(slug="mail", title="Mail")
    phase = create_phase(challenge=challenge, slug="dev", name="Dev", scoring_profile="ntire2025-dev")
    take_part(user, challenge)
    team = create_team(challenge=challenge, name="Mailers", user=user)
    submission = create_submission(phase=phase, team=team, user=user,
                                   upload=ContentFile(b"PK-not-really", name="r.zip"), enqueue=False)
    # The phase has no input set: an organizer's mistake, so the run fails and is refunded.
    assert pipeline.run_submission(submission.pk) == "failed"
    assert Submission.objects.get(pk=submission.pk).counts_toward_quota is False
    [message] = mail.outbox
    assert message.to == ["mailme@example.org"]
    assert "failed" in message.subject and "input set" in message.body
    assert "total" not in message.body.lower()
