"""Issue 14's rate-limit findings: the admin's login, addresses behind a proxy, per-account login
limits, the upload limit keyed on who is authenticated, and private API answers."""

from __future__ import annotations

import pytest
from accounts.models import ApiToken
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db
PROXY = "10.0.0.2"  # nginx, as REMOTE_ADDR sees it


def wrong_logins(client, url: str, count: int, username: str = "target", **extra) -> list[int]:
    return [client.post(url, {"username": username, "password": f"wrong-{i}"}, **extra).status_code
            for i in range(count)]


def test_admin_login_is_rate_limited(client):
    get_user_model().objects.create_superuser("root", "root@example.org", "the-Right-passw0rd")
    statuses = wrong_logins(client, "/admin/login/", 12, username="root")
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
    refused = client.post("/admin/login/", {"username": "root", "password": "the-Right-passw0rd"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(client, settings):
    settings.FR_TRUSTED_PROXIES = 0
    statuses = [client.post("/accounts/login/", {"username": f"user{i}", "password": "x"},
                            HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(11)]
    assert statuses[-1] == 429  # a header the client wrote is no new address


def test_behind_one_proxy_each_visitor_has_their_own_login_limit(client, settings):
    settings.FR_TRUSTED_PROXIES = 1
    # One visitor, who also forges the left part of the header (nginx appends the real address).
    statuses = [client.post("/accounts/login/", {"username": f"user{i}", "password": "x"}, REMOTE_ADDR=PROXY,
                            HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.5").status_code for i in range(11)]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429
    other = client.post("/accounts/login/", {"username": "someone", "password": "x"}, REMOTE_ADDR=PROXY,
                        HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert other.status_code == 200  # another visitor behind the same proxy is not locked out


def test_behind_one_proxy_signups_count_per_visitor(client, settings):
    settings.FR_TRUSTED_PROXIES = 1
    for i in range(10):
        client.post("/accounts/signup/", {"username": ""}, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    assert client.post("/accounts/signup/", {"username": ""}, REMOTE_ADDR=PROXY,
                       HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 200


def test_login_is_limited_per_account_from_any_address(client):
    get_user_model().objects.create_user("target", "t@example.org", "the-Right-passw0rd")
    statuses = [client.post("/accounts/login/", {"username": "Target" if i % 2 else "target", "password": "x"},
                            REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(11)]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429
    # Another account from a fresh address is unaffected.
    assert client.post("/accounts/login/", {"username": "other", "password": "x"},
                       REMOTE_ADDR="198.51.100.200").status_code == 200


@pytest.fixture
def uploader(settings, make_team, phase):
    settings.FR_UPLOAD_RATE = (2, 3600)
    team = make_team("Busy")
    return team.created_by, ApiToken.objects.create(user=team.created_by).key, phase


def test_upload_limit_ignores_how_the_token_header_is_spelt(client, uploader):
    _, key, phase = uploader
    url = f"/api/v1/phases/{phase.pk}/submissions"
    codes = [client.post(url, {}, HTTP_AUTHORIZATION=header).status_code
             for header in (f"Token {key}", f"Token  {key}", f"Token \t{key}")]
    assert codes == [400, 400, 429]  # 400: no archive; the third is one upload too many


def test_upload_limit_ignores_a_junk_authorization_header_on_the_site(client, uploader):
    user, _, phase = uploader
    client.force_login(user)
    url = f"/c/{phase.challenge.slug}/p/{phase.slug}/submit/"
    codes = [client.post(url, {}, HTTP_AUTHORIZATION=f"junk-{i}").status_code for i in range(3)]
    assert codes[:2] == [302, 302] and codes[2] == 429


def test_authenticated_api_answers_are_private(client, uploader, make_scored):
    user, key, phase = uploader
    submission = make_scored(user.memberships.get().team, 0.5)
    for url in (f"/api/v1/submissions/{submission.pk}", f"/api/v1/phases/{phase.pk}/leaderboard"):
        response = client.get(url, HTTP_AUTHORIZATION=f"Token {key}")
        assert response.status_code == 200, url
        assert "private" in response["Cache-Control"], url
        assert "Authorization" in response["Vary"], url
    anonymous = client.get(f"/api/v1/phases/{phase.pk}/leaderboard")
    assert "private" not in anonymous.get("Cache-Control", "")
    assert "Authorization" in anonymous["Vary"]  # a shared cache keeps it apart from a member's answer
