"""Every HTML page carries a Content-Security-Policy; its inline scripts carry that response's nonce.

The browser side (charts, sortable tables, upload progress still working under the policy, with no
violation reported) is in tests/browser/ and tests/platform/test_production_stack.py.
"""

from __future__ import annotations

import re

import pytest
from accounts.models import ApiToken
from django.urls import reverse

SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_scripts_allowed(response) -> None:
    policy = policy_of(response)
    [nonce] = [s[len("'nonce-"):-1] for s in policy["script-src"] if s.startswith("'nonce-")]
    assert policy["script-src"][0] == "'self'" and "'unsafe-inline'" not in policy["script-src"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    for attributes in SCRIPT.findall(response.content.decode()):
        if "src=" in attributes or 'type="application/json"' in attributes:
            continue  # from our origin, or data that never runs
        assert f'nonce="{nonce}"' in attributes, attributes


@pytest.fixture
def pages(client, organizer, make_team, make_scored, phase):
    team = make_team("Alpha")
    submission = make_scored(team, 0.5)
    client.force_login(team.created_by)
    return client, [
        reverse("home"), reverse("challenge-detail", args=["ntire"]), reverse("phase-detail", args=["ntire", "dev"]),
        reverse("leaderboard", args=["ntire", "dev"]), reverse("submission-detail", args=[submission.pk]),
        reverse("team-detail", args=[team.pk]), reverse("team-create", args=["ntire"]), reverse("api-docs"),
        reverse("api-token"),
    ]


def test_every_page_has_a_policy_and_its_inline_scripts_the_nonce(pages, organizer, make_scored):
    client, urls = pages
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_scripts_allowed(response)
    client.force_login(organizer)
    for url in (reverse("organizers:phase", args=["ntire", "dev"]), "/admin/"):
        assert_scripts_allowed(client.get(url))
    client.logout()
    for url in ("/accounts/login/", "/admin/login/", reverse("leaderboard", args=["ntire", "dev"])):
        assert_scripts_allowed(client.get(url))


def test_a_running_submission_page_reloads_itself_with_the_nonce(client, make_team, submit):
    team = make_team("Alpha")
    client.force_login(team.created_by)
    response = client.get(reverse("submission-detail", args=[submit(team).pk]))
    assert "location.reload" in response.content.decode()  # the inline script this page has
    assert_scripts_allowed(response)


def test_each_response_has_its_own_nonce(client, challenge):
    nonces = {policy_of(client.get("/"))["script-src"][1] for _ in range(3)}
    assert len(nonces) == 3


def test_the_anonymous_leaderboard_cached_whole_has_no_inline_script(client, phase, make_team, make_scored):
    """The anonymous page is stored once per board version: a nonce in it would go stale."""
    make_scored(make_team("Alpha"), 0.5)
    for _ in range(2):
        response = client.get(reverse("leaderboard", args=["ntire", "dev"]))
        assert_scripts_allowed(response)
        assert "nonce=" not in response.content.decode()


def test_direct_uploads_may_connect_to_the_public_s3_address(client, settings, make_team, phase):
    settings.S3_BUCKET = "frplatform"
    settings.S3_PUBLIC_ENDPOINT_URL = "https://s3.challenge.example.org/ignored/path"
    team = make_team("Alpha")
    client.force_login(team.created_by)
    response = client.get(reverse("phase-detail", args=["ntire", "dev"]))
    assert policy_of(response)["connect-src"] == ["'self'", "https://s3.challenge.example.org"]
    assert "Storage is S3: send the archive straight to it" in response.content.decode()  # the inline script
    assert_scripts_allowed(response)


def test_json_answers_carry_no_page_policy(client, make_team):
    team = make_team("Alpha")
    token = ApiToken.objects.create(user=team.created_by)
    response = client.get("/api/v1/challenges", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert "Content-Security-Policy" not in response
