"""Challenge pages in Markdown (sanitised), the generated Evaluation page, the phase timeline, and the
organizer pages for pages, registration requests and the participants CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core import mail
from django.utils import timezone

from competitions.markdown import render_markdown
from competitions.models import Challenge, ChallengePage, Registration
from competitions.services import create_phase, save_page
from tests.platform.conftest import PASSWORD

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src="x" onerror="alert(2)">',
    "[click](javascript:alert(3))",
    "[mixed](JaVaScRiPt:alert(4))",
    "[encoded](&#106;avascript:alert(5))",
    '<a href="javascript:alert(6)" onclick="alert(7)">raw</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCg4KTwvc2NyaXB0Pg==">data</a>',
    '<iframe src="https://evil.example/"></iframe>',
    '<svg onload="alert(9)"><circle r="1"/></svg>',
    '<p style="background:url(javascript:alert(10))" onmouseover="alert(11)">styled</p>',
    '<form action="https://evil.example/"><input name="password"></form>',
    "<object data='x.swf'></object><embed src='x.swf'>",
    '<math><mi xlink:href="javascript:alert(12)">m</mi></math>',
    "![img](javascript:alert(13))",
    '<div><style>body{display:none}</style></div>',
    "<base href='https://evil.example/'>",
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
]


class _Elements(HTMLParser):
    """Every element and attribute of an HTML fragment, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_markdown_is_sanitised(payload):
    html = str(render_markdown(f"Intro\n\n{payload}\n\nOutro"))
    parsed = _Elements()
    parsed.feed(html)
    forbidden = {"script", "iframe", "svg", "math", "form", "input", "object", "embed", "style", "base", "meta"}
    assert not forbidden & set(parsed.tags), (payload, html)
    for _tag, name, value in parsed.attributes:
        assert not name.startswith("on") and name != "style", (payload, html)
        if name in ("href", "src"):
            scheme = re.sub(r"[\x00-\x20]", "", value).lower().split(":", 1)[0] if ":" in value else ""
            assert scheme in ("", "http", "https", "mailto"), (payload, html)
    assert "<script" not in html.lower()  # not even as an unparsed fragment
    assert "<p>Intro</p>" in html and "<p>Outro</p>" in html  # the rest of the page survives


def test_markdown_keeps_what_organizers_write():
    html = str(render_markdown(
        "# Rules\n\n**Bold**, *em*, `code`, ~~gone~~\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n"
        "[NTIRE](https://cvlai.net/ntire/2025/) and <mailto:orga@example.org>\n\n1. one\n2. two\n"))
    assert "<h1>Rules</h1>" in html and "<strong>Bold</strong>" in html and "<code>code</code>" in html
    assert "<table>" in html and "<td>2</td>" in html and "<s>gone</s>" in html
    assert '<a href="https://cvlai.net/ntire/2025/" rel="noopener noreferrer nofollow">NTIRE</a>' in html
    assert 'href="mailto:orga@example.org"' in html and "<ol>" in html


@pytest.fixture
def org_client(client, organizer):
    client.login(username=organizer.username, password=PASSWORD)
    return client


def test_organizer_writes_pages_shown_as_ordered_sanitised_tabs_under_the_csp(org_client, challenge, phase):
    for kind, body in (("terms", "Be **fair**."), ("overview", "Welcome <script>alert(1)</script>"),
                       ("data", "Inputs here.")):
        response = org_client.post(f"/organize/c/{challenge.slug}/pages/", {"kind": kind, "body": body})
        assert response.status_code == 302, response.content[:500]
    org_client.post(f"/organize/c/{challenge.slug}/pages/",
                    {"kind": "extra", "title": "FAQ", "order": "5", "body": "Ask [us](javascript:x)."})
    response = org_client.get(f"/c/{challenge.slug}/")
    text = response.content.decode()
    tabs = re.findall(r'data-page="([a-z-]+)"', text)
    assert tabs == ["overview", "faq", "data", "terms"]  # overview 0, FAQ 5, data 20, terms 30
    assert "Welcome" in text and "alert(1)" not in text
    assert "script-src 'self' 'nonce-" in response["Content-Security-Policy"]  # the CSP stays as it was
    faq = org_client.get(f"/c/{challenge.slug}/pages/faq/").content.decode()
    assert 'id="page-faq"' in faq and 'href="javascript:' not in faq.lower()
    assert org_client.get(f"/c/{challenge.slug}/pages/nope/").status_code == 404


def test_the_evaluation_page_is_generated_from_each_phases_profile(client, challenge, phase):
    test = create_phase(challenge=challenge, slug="test", name="Final test", kind="test",
                        scoring_profile="ntire2026-no-qalign", opens_at=timezone.now() + timedelta(days=9))
    save_page(challenge=challenge, kind="evaluation", body="How we score.")
    text = client.get(f"/c/{challenge.slug}/pages/evaluation/").content.decode()
    assert 'id="generated-evaluation"' in text and "How we score." in text
    assert "total = CLIPIQA + MUSIQ/100" in text  # the development phase's ntire2025-dev
    assert ("total = CLIPIQA + MANIQA + MUSIQ/100 + max(0, (10 - NIQE)/10) + max(0, (100 - FID)/100)"
            in text.replace("&quot;", '"'))
    section = text[text.index("Final test"):]
    assert "<td>Wider-Test</td>\n<td>0.2</td>" in section and "<td>WebPhoto-Test</td>\n<td>0.25</td>" in section
    # The phase's own snapshot, not the preset: a threshold the organizers changed shows as it is.
    test.profile_snapshot = {**test.profile_snapshot,
                             "identity_thresholds": {**test.profile_snapshot["identity_thresholds"], "LFW-Test": 0.65}}
    test.save()
    assert "<td>LFW-Test</td>\n<td>0.65</td>" in client.get(f"/c/{challenge.slug}/pages/evaluation/").content.decode()


def test_timeline_shows_what_is_open_and_the_time_left(client, challenge, storage):
    now = timezone.now()
    create_phase(challenge=challenge, slug="old", name="Warm-up", scoring_profile="ntire2025-dev", order=0,
                 opens_at=now - timedelta(days=20), closes_at=now - timedelta(days=10))
    create_phase(challenge=challenge, slug="dev", name="Development", scoring_profile="ntire2025-dev", order=1,
                 opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=3, hours=2))
    create_phase(challenge=challenge, slug="test", name="Test", scoring_profile="ntire2025-dev", order=2,
                 opens_at=now + timedelta(days=5))
    text = client.get(f"/c/{challenge.slug}/").content.decode()
    states = re.findall(r'data-phase="([a-z]+)" data-state="([a-z]+)"', text)
    assert states == [("old", "closed"), ("dev", "open"), ("test", "upcoming")]
    dev = text[text.index('data-phase="dev"'):text.index('data-phase="test"')]
    assert "open now" in dev and re.search(r"3\xa0days, 1\xa0hour left|3\xa0days, 2\xa0hours left", dev), dev
    assert "opens in 4\xa0days" in text or "opens in 5\xa0days" in text


def test_changed_terms_ask_for_acceptance_again_on_the_challenge_page(client, challenge, make_user):
    save_page(challenge=challenge, kind="terms", body="Version one.")
    ada = make_user("ada")  # registered under version 1
    client.login(username="ada", password=PASSWORD)
    assert 'id="register-form"' not in client.get(f"/c/{challenge.slug}/").content.decode()
    assert save_page(challenge=challenge, kind="terms", body="Version one.").version == 1  # same text, same version
    assert save_page(challenge=challenge, kind="terms", body="Version two.").version == 2
    text = client.get(f"/c/{challenge.slug}/").content.decode()
    assert 'id="register-form"' in text and 'name="terms_version" value="2"' in text and "terms of" in text
    stale = client.post(f"/c/{challenge.slug}/register/", {"terms_version": "1", "full_name": "Ada",
                                                           "affiliation": "Lab", "accept_terms": "on"}, follow=True)
    assert "The terms changed while you read them" in stale.content.decode()
    client.post(f"/c/{challenge.slug}/register/", {"terms_version": "2", "full_name": "Ada", "affiliation": "Lab",
                                                   "accept_terms": "on"})
    registration = Registration.objects.get(user=ada, challenge=challenge)
    assert registration.terms_version == 2
    assert registration.terms_sha256 == ChallengePage.objects.get(challenge=challenge, kind="terms").sha256


def test_organizer_approves_many_denies_and_revokes_with_emails(org_client, challenge, make_user, client,
                                                                django_capture_on_commit_callbacks):
    challenge.registration_mode = Challenge.RegistrationMode.APPROVAL
    challenge.save()
    from django.test import Client

    people = {}
    for name in ("ann", "ben", "cid"):
        people[name] = make_user(name, registered=False)
        own = Client()
        own.force_login(people[name])
        waiting = own.post(f"/c/{challenge.slug}/register/", {"terms_version": "0", "full_name": name.title(),
                                                               "affiliation": "Lab", "accept_terms": "on"},
                           follow=True).content.decode()
        assert "the organizers approve each participant" in waiting and 'data-status="pending"' in waiting
    ids = {r.user.username: r.pk for r in Registration.objects.filter(challenge=challenge)}
    page = org_client.get(f"/organize/c/{challenge.slug}/registrations/").content.decode()
    assert page.count('data-status="pending"') == 3
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        done = org_client.post(f"/organize/c/{challenge.slug}/registrations/",
                               {"registrations": [ids["ann"], ids["ben"]], "decision": "approve", "message": "Hi!"},
                               follow=True)
        assert "2 registrations approved" in done.content.decode()
        org_client.post(f"/organize/c/{challenge.slug}/registrations/",
                        {"registrations": [ids["cid"]], "decision": "deny", "message": "Who are you?"})
        org_client.post(f"/organize/c/{challenge.slug}/registrations/", {"revoke": ids["ben"], "message": "Bye."})
    statuses = dict(Registration.objects.filter(challenge=challenge).values_list("user__username", "status"))
    assert statuses == {"ann": "approved", "ben": "revoked", "cid": "denied"}
    assert sorted((m.to[0], m.subject.split(": ")[1]) for m in mail.outbox) == [
        ("ann@example.org", "registration approved"), ("ben@example.org", "participation revoked"),
        ("ben@example.org", "registration approved"), ("cid@example.org", "registration declined")]
    # Only the organizers see the page.
    stranger = Client()
    stranger.force_login(people["ann"])
    assert stranger.get(f"/organize/c/{challenge.slug}/registrations/").status_code == 403
    assert stranger.post(f"/organize/c/{challenge.slug}/registrations/",
                         {"registrations": [ids["cid"]], "decision": "approve"}).status_code == 403
    assert stranger.get(f"/organize/c/{challenge.slug}/participants.csv").status_code == 403


def test_participants_csv_lists_names_affiliations_teams_through_csv_cells(org_client, challenge, make_user,
                                                                           make_team):
    from accounts.services import update_profile

    team = make_team("=HYPERLINK(\"x\")", owner=make_user("owner"))
    update_profile(team.created_by, full_name="+Evil Name", affiliation="Uni of Tests")
    make_user("zed")
    response = org_client.get(f"/organize/c/{challenge.slug}/participants.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_user = {row["username"]: row for row in rows}
    owner = by_user[team.created_by.username]
    assert owner["full_name"] == "'+Evil Name" and owner["affiliation"] == "Uni of Tests"
    assert owner["team"] == "'=HYPERLINK(\"x\")" and owner["status"] == "approved" and owner["terms_version"] == "0"
    assert by_user["zed"]["team"] == "" and by_user["zed"]["affiliation"] == "Test University"


def test_organizer_switches_the_challenge_to_approval(org_client, challenge):
    response = org_client.post(f"/organize/c/{challenge.slug}/", {
        "title": challenge.title, "description": "", "max_team_size": "3", "registration_mode": "approval"})
    assert response.status_code == 302
    challenge.refresh_from_db()
    assert challenge.registration_mode == Challenge.RegistrationMode.APPROVAL
    org_client.post(f"/organize/c/{challenge.slug}/", {"title": "Renamed", "description": "", "max_team_size": "3"})
    challenge.refresh_from_db()
    assert challenge.title == "Renamed" and challenge.registration_mode == "approval"  # left out: kept
