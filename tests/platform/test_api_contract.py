"""The API against its own OpenAPI document: every endpoint's success and each documented error answer validates
against the document's schema (jsonschema), every API URL is in the document, each refusal code has one status,
and the participant CLI (scoring.client) works against a live server using documented endpoints only."""

from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
import pytest
from accounts.models import ApiToken
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from competitions import data_services
from frplatform.api import PREFIX
from submissions.models import PendingUpload
from submissions.refusals import _SPEC, Refusal
from tests.platform.conftest import upload_file

# Documented answers this test cannot produce without S3 storage (the multipart start and every refusal of a
# finish; test_create_service drives them on SeaweedFS) or a refusal the submission endpoint already shows.
NEED_S3_OR_RACE: set[tuple[str, str, int]] = {
    *(("/api/v1/phases/{phase_id}/uploads", "post", status) for status in (201, 409, 413, 429)),
    *(("/api/v1/uploads/{upload_id}/finish", "post", status) for status in (201, 403, 409, 413, 429)),
    ("/api/v1/data/{file_id}", "get", 302),  # a presigned redirect: S3 only (test_downloads_stacks)
}


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def answer_schema(document, path: str, method: str, status: int) -> dict:
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, not documented"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def check(document, path: str, method: str, response) -> None:
    responses = document["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, f"{method.upper()} {path} answered {response.status_code}"
    if "content" not in responses[str(response.status_code)]:
        return  # documented without a JSON body: a file, or a redirect
    body = json.loads(response.content)
    resolver = jsonschema.validators.validator_for({})
    schema = answer_schema(document, path, method, response.status_code)
    resolver(schema, format_checker=None).validate(body)  # refs resolve within the document's components


def api_routes() -> set[str]:
    found = set()

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if route.startswith(PREFIX.lstrip("/")):
                    found.add("/" + route)
    walk(get_resolver().url_patterns, "")
    return found


def test_every_api_url_is_in_the_document(document):
    import re

    documented = {re.sub(r"\{(\w+)\}", r"<int:\1>", path) for path in document["paths"]}
    assert api_routes() == documented


def test_each_refusal_code_has_one_status_and_quota_is_the_only_429():
    assert set(_SPEC) == set(Refusal)
    assert {code for code in Refusal if code.status == 429} == {
        Refusal.TOTAL_QUOTA, Refusal.DAILY_QUOTA, Refusal.RUNNING_AT_ONCE}
    assert Refusal.PHASE_CLOSED.status == 409


@pytest.mark.django_db(transaction=True)
def test_every_endpoint_success_and_documented_errors(document, loaded_phase, make_team, make_archive, submit,
                                                     make_user):
    phase = loaded_phase
    team = make_team("Alpha")
    token = ApiToken.objects.create(user=team.created_by).key
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    loner = ApiToken.objects.create(user=make_user("loner")).key
    c = Client()
    P = "/api/v1/phases/{phase_id}"
    seen: dict[tuple[str, str], set[int]] = {}

    def call(method: str, path: str, url: str, expect: int, **kwargs):
        response = getattr(c, method)(url, **kwargs)
        assert response.status_code == expect, (method, url, response.content[:300])
        check(document, path, method, response)
        seen.setdefault((path, method), set()).add(expect)
        if "HTTP_AUTHORIZATION" in kwargs and expect != 401:
            assert "private" in response["Cache-Control"]
        assert {"Authorization", "Cookie"} <= {v.strip() for v in response["Vary"].split(",")}
        return response

    sub_url = f"/api/v1/phases/{phase.pk}/submissions"
    up_url = f"/api/v1/phases/{phase.pk}/uploads"
    call("get", "/api/v1/challenges", "/api/v1/challenges", 200)
    created = call("post", P + "/submissions", sub_url, 201, data={"archive": upload_file(make_archive())}, **auth)
    pk = created.json()["id"]
    call("post", P + "/submissions", sub_url, 400, data={}, **auth)  # no archive
    call("post", P + "/submissions", sub_url, 401, data={"archive": upload_file(make_archive())})
    call("post", P + "/submissions", sub_url, 401, data={}, HTTP_AUTHORIZATION="Token wrong")
    call("post", P + "/submissions", sub_url, 403, data={"archive": upload_file(make_archive())},
         HTTP_AUTHORIZATION=f"Token {loner}")
    call("post", P + "/submissions", "/api/v1/phases/999999/submissions", 404,
         data={"archive": upload_file(make_archive())}, **auth)
    phase.max_archive_bytes = 100
    phase.save()
    call("post", P + "/submissions", sub_url, 413, data={"archive": upload_file(make_archive())}, **auth)
    phase.max_archive_bytes, phase.max_per_day = 10**9, 1
    phase.save()
    quota = call("post", P + "/submissions", sub_url, 429, data={"archive": upload_file(make_archive())}, **auth)
    assert quota.json()["code"] == "daily_quota"
    phase.closes_at = timezone.now() - timedelta(minutes=1)
    phase.save()
    closed = call("post", P + "/submissions", sub_url, 409, data={"archive": upload_file(make_archive())}, **auth)
    assert closed.json()["code"] == "phase_closed"  # not 429: waiting does not reopen a phase

    call("get", "/api/v1/submissions/{pk}", f"/api/v1/submissions/{pk}", 200, **auth)
    call("get", "/api/v1/submissions/{pk}", f"/api/v1/submissions/{pk}", 401)
    call("get", "/api/v1/submissions/{pk}", f"/api/v1/submissions/{pk}", 404, HTTP_AUTHORIZATION=f"Token {loner}")

    call("get", P + "/leaderboard", f"/api/v1/phases/{phase.pk}/leaderboard", 200)
    call("get", P + "/leaderboard", "/api/v1/phases/999999/leaderboard", 404)
    call("get", P + "/rank-stability", f"/api/v1/phases/{phase.pk}/rank-stability", 200, **auth)
    call("get", P + "/rank-stability", "/api/v1/phases/999999/rank-stability", 404)

    # The phase's downloads, built as the worker builds them; a newcomer (not registered) is refused.
    data_services.build_phase_data(phase)
    stranger = ApiToken.objects.create(user=make_user("stranger", registered=False)).key
    listing = call("get", P + "/data", f"/api/v1/phases/{phase.pk}/data", 200, **auth)
    file_id = listing.json()["files"][0]["id"]
    call("get", P + "/data", f"/api/v1/phases/{phase.pk}/data", 401)
    call("get", P + "/data", f"/api/v1/phases/{phase.pk}/data", 403, HTTP_AUTHORIZATION=f"Token {stranger}")
    call("get", P + "/data", "/api/v1/phases/999999/data", 404, **auth)
    got = call("get", "/api/v1/data/{file_id}", f"/api/v1/data/{file_id}", 200, **auth)
    assert b"".join(got.streaming_content)
    call("get", "/api/v1/data/{file_id}", f"/api/v1/data/{file_id}", 401)
    call("get", "/api/v1/data/{file_id}", f"/api/v1/data/{file_id}", 403, HTTP_AUTHORIZATION=f"Token {stranger}")
    call("get", "/api/v1/data/{file_id}", "/api/v1/data/999999", 404, **auth)

    # Without S3 the start says where to post; the refusals come first.
    phase.closes_at = None
    phase.max_per_day = 10
    phase.save()
    js = {"content_type": "application/json", **auth}
    call("post", P + "/uploads", up_url, 200, data={"size": 10}, **js)
    call("post", P + "/uploads", up_url, 400, data="{not json", **js)
    call("post", P + "/uploads", up_url, 422, data={"size": "ten"}, **js)
    call("post", P + "/uploads", up_url, 401, data={"size": 10}, content_type="application/json")
    call("post", P + "/uploads", up_url, 403, data={"size": 10}, content_type="application/json",
         HTTP_AUTHORIZATION=f"Token {loner}")
    call("post", P + "/uploads", "/api/v1/phases/999999/uploads", 404, data={"size": 10}, **js)

    fin = "/api/v1/uploads/{upload_id}/finish"
    pending = PendingUpload.objects.create(phase=phase, team=team, user=team.created_by, key="k", s3_upload_id="u",
                                           size=10, part_size=10)
    call("post", fin, f"/api/v1/uploads/{pending.pk}/finish", 422, data={"parts": "none"}, **js)
    call("post", fin, f"/api/v1/uploads/{pending.pk}/finish", 400, data="[", **js)
    call("post", fin, f"/api/v1/uploads/{pending.pk}/finish", 401, data={"parts": []},
         content_type="application/json")
    call("post", fin, f"/api/v1/uploads/{pending.pk}/finish", 404, data={"parts": []}, content_type="application/json",
         HTTP_AUTHORIZATION=f"Token {loner}")
    # (201 and the S3-only answers of the direct upload: test_create_service's direct caller, on SeaweedFS.)

    assert {path for path, _ in seen} == set(document["paths"])
    unexercised = {(path, method, int(status)) for path, ops in document["paths"].items()
                   for method, op in ops.items() for status in op["responses"]
                   if int(status) not in seen.get((path, method), set())}
    assert unexercised == NEED_S3_OR_RACE


@pytest.mark.django_db(transaction=True)
def test_the_cli_uses_documented_endpoints_on_a_live_server(live_server, document, loaded_phase, make_team,
                                                            make_archive):
    import re
    from urllib.parse import urlsplit

    from scoring.client import Client as CliClient
    from scoring.client import ClientError

    team = make_team("Alpha")
    cli = CliClient(live_server.url, ApiToken.objects.create(user=team.created_by).key)
    requested: list[str] = []  # every URL path the client asks for, through its one session
    send = cli.http.request

    def recording(method, url, *args, **kwargs):
        requested.append(urlsplit(url).path)
        return send(method, url, *args, **kwargs)

    cli.http.request = recording
    submission = cli.submit(loaded_phase.pk, make_archive(), "from the CLI", show_progress=False)
    assert cli.status(submission)["state"] == "submitted"
    assert cli.leaderboard(loaded_phase.pk)["phase"] == loaded_phase.slug
    loaded_phase.closes_at = timezone.now() - timedelta(minutes=1)
    loaded_phase.save()
    with pytest.raises(ClientError, match="is not open for submissions"):  # the API's message, as it is
        cli.submit(loaded_phase.pk, make_archive(), show_progress=False)
    used = {"/api/v1/phases/{phase_id}/uploads", "/api/v1/phases/{phase_id}/submissions",
            "/api/v1/submissions/{pk}", "/api/v1/phases/{phase_id}/leaderboard"}
    assert used <= set(document["paths"])
    patterns = {path: re.compile(re.sub(r"\{\w+\}", "[^/]+", path)) for path in document["paths"]}
    matched = {path: [t for t, pattern in patterns.items() if pattern.fullmatch(path)] for path in requested}
    assert all(matched.values()), f"undocumented URLs asked for: {[p for p, t in matched.items() if not t]}"
    assert {template for templates in matched.values() for template in templates} == used
