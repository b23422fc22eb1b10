"""Who may see and change what: other teams' ids, anonymous users, API tokens, CSRF, accounts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from accounts.models import ApiToken
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from competitions.models import Phase
from submissions import pipeline, transitions
from submissions.models import Submission
from teams.models import Invitation, Membership, Team
from tests.platform.conftest import PASSWORD, score_report, upload_file

SECRET_TEAM = "Betamax Secret"
SECRET_TOTAL = 0.987654  # shown as 0.9877 on pages


@dataclass
class World:
    alpha: Team
    beta: Team
    alpha_submission: Submission
    beta_submission: Submission


@pytest.fixture
def world(phase, make_team, make_scored) -> World:
    alpha = make_team("Alpha", members=["alice2"])
    beta = make_team(SECRET_TEAM, owner=get_user_model().objects.create_user("bob", "bob@example.org", PASSWORD))
    return World(alpha, beta, make_scored(alpha, 0.5), make_scored(beta, SECRET_TOTAL))


def assert_no_secret(body: str, where) -> None:
    for secret in (SECRET_TEAM, "Betamax", f"{SECRET_TOTAL:.4f}", str(SECRET_TOTAL)):
        assert secret not in body, (where, secret)


def id_urls(world: World) -> list[tuple[str, str, str]]:
    """(method, url, label) of every page that takes the other team's (beta's) id."""
    sub, team = world.beta_submission.pk, world.beta.pk
    return [
        ("get", reverse("submission-detail", args=[sub]), "submission detail"),
        ("get", reverse("submission-status", args=[sub]), "submission status.json"),
        ("post", reverse("submission-select", args=[sub]), "submission select"),
        ("get", reverse("team-detail", args=[team]), "team detail"),
        ("post", reverse("team-invite", args=[team]), "team invite"),
        ("post", reverse("team-leave", args=[team]), "team leave"),
        ("get", reverse("api-submission", args=[sub]), "API submission"),
    ]


def test_another_teams_ids_show_nothing(client, world, phase):
    phase.selection = Phase.Selection.SELECTED
    phase.save()
    alice = world.alpha.created_by
    client.force_login(alice)
    token = ApiToken.objects.create(user=alice).key
    for method, url, label in id_urls(world):
        headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if url.startswith("/api/") else {}
        response = getattr(client, method)(url, {"username": "alice2"} if "invite" in url else {}, **headers)
        assert_no_secret(response.content.decode(), label)
        if label in ("team invite", "team leave"):
            # Refused with a message, redirected to the team page, which is a 404 for a non-member.
            assert response.status_code == 302, label
            followed = client.get(response.url)
            assert followed.status_code == 404, label
            assert_no_secret(followed.content.decode(), label)
        else:
            assert response.status_code == 404, label
    # Nothing was changed on the other team.
    assert not Invitation.objects.filter(team=world.beta).exists()
    assert list(Membership.objects.filter(team=world.beta).values_list("user__username", flat=True)) == ["bob"]
    assert not Submission.objects.filter(is_selected=True).exists()

    # The same pages with alice's own ids work (the test above can fail).
    own = world.alpha_submission.pk
    assert client.get(reverse("submission-detail", args=[own])).status_code == 200
    assert client.get(reverse("team-detail", args=[world.alpha.pk])).status_code == 200
    response = client.get(reverse("api-submission", args=[own]), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and response.json()["result"]["total"] == pytest.approx(0.5)
    # ... and beta's owner sees what alice could not.
    client.force_login(world.beta.created_by)
    assert SECRET_TEAM in client.get(reverse("submission-detail", args=[world.beta_submission.pk])).content.decode()


def test_anonymous_users_see_nothing(client, world):
    for method, url, label in id_urls(world):
        response = getattr(client, method)(url)
        body = response.content.decode()
        assert_no_secret(body, label)
        if url.startswith("/api/"):
            assert response.status_code == 401 and "Token" in response.json()["error"], label
        elif response.status_code == 302:
            assert response.url.startswith(reverse("login") + "?next="), label
        else:
            assert response.status_code == 404, label
    assert not Invitation.objects.filter(team=world.beta).exists()
    assert Membership.objects.filter(team=world.beta).count() == 1


def test_organizers_and_staff_see_any_submission(client, world, organizer, make_user):
    for user in (organizer, make_user("admin", is_staff=True)):
        client.force_login(user)
        response = client.get(reverse("submission-status", args=[world.beta_submission.pk]))
        assert response.status_code == 200 and response.json()["result"]["total"] == pytest.approx(SECRET_TOTAL)


def test_hidden_phase_keeps_a_teams_own_scores_hidden_until_published(client, loaded_phase, make_team, submit):
    """On a hidden phase the team sees its run's progress, but no score anywhere, the log included."""
    loaded_phase.visibility = Phase.Visibility.HIDDEN
    loaded_phase.save()
    team = make_team("Alpha")
    submission = submit(team)
    assert transitions.transition(submission.pk, "validating", "v")
    assert transitions.transition(submission.pk, "scoring", "s")
    assert pipeline.store_result(submission.pk, score_report(total=SECRET_TOTAL), 1.0) == "scored"

    client.force_login(team.created_by)
    token = ApiToken.objects.create(user=team.created_by).key
    pages = {
        "detail": client.get(reverse("submission-detail", args=[submission.pk])).content.decode(),
        "status": client.get(reverse("submission-status", args=[submission.pk])).content.decode(),
        "api": client.get(reverse("api-submission", args=[submission.pk]),
                          HTTP_AUTHORIZATION=f"Token {token}").content.decode(),
        "phase": client.get(reverse("phase-detail", args=["ntire", "dev"])).content.decode(),
    }
    for where, body in pages.items():
        assert f"{SECRET_TOTAL:.4f}" not in body and str(SECRET_TOTAL) not in body, where
    assert "hidden until the organizers publish" in pages["detail"]
    assert '"state": "scored"' in pages["status"]

    loaded_phase.published = True
    loaded_phase.save()
    assert f"{SECRET_TOTAL:.4f}" in client.get(reverse("submission-detail", args=[submission.pk])).content.decode()
    assert f"{SECRET_TOTAL:.4f}" in client.get(reverse("phase-detail", args=["ntire", "dev"])).content.decode()


# --------------------------------------------------------------------------- API tokens


def test_api_posts_need_a_token(client, world, phase, make_archive, loaded_phase):
    alice = world.alpha.created_by
    url = reverse("api-submit", args=[phase.pk])

    def post(**headers):
        return client.post(url, {"archive": upload_file(make_archive())}, **headers)

    assert post().status_code == 401  # anonymous
    # A browser session alone is held to the CSRF check; a wrong token never falls back to it.
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = browser.post(url, {"archive": upload_file(make_archive())})
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    client.force_login(alice)
    for header in ("Token not-a-real-token", "Token ", "Bearer whatever", "Basic YWxpY2U6cGFzcw=="):
        response = post(HTTP_AUTHORIZATION=header)
        assert response.status_code == 401 and "Token" in response.json()["error"], header
    assert not Submission.objects.filter(team=world.alpha).exclude(pk=world.alpha_submission.pk).exists()

    client.logout()
    token = ApiToken.objects.create(user=alice).key
    response = post(HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 201, response.content
    created = Submission.objects.get(pk=response.json()["id"])
    assert (created.team, created.submitted_by, created.state) == (world.alpha, alice, "submitted")
    assert response.json()["status_url"] == f"/api/v1/submissions/{created.pk}"

    # A token of someone without a team is refused; a deactivated user's token is dead.
    loner = get_user_model().objects.create_user("loner", password=PASSWORD)
    loner_token = ApiToken.objects.create(user=loner).key
    assert post(HTTP_AUTHORIZATION=f"Token {loner_token}").status_code == 403
    alice.is_active = False
    alice.save()
    assert post(HTTP_AUTHORIZATION=f"Token {token}").status_code == 401


def test_api_token_page_and_regeneration(client, make_user):
    alice = make_user("alice")
    client.force_login(alice)
    page = client.get(reverse("api-token")).content.decode()
    first = ApiToken.objects.get(user=alice).key
    assert first in page
    assert client.post(reverse("api-token-regenerate")).status_code == 302
    second = ApiToken.objects.get(user=alice).key
    assert second != first
    assert client.get(reverse("api-submission", args=[1]), HTTP_AUTHORIZATION=f"Token {first}").status_code == 401


# --------------------------------------------------------------------------- CSRF


def csrf_of(client: Client, path: str) -> str:
    assert client.get(path).status_code == 200
    return client.cookies["csrftoken"].value


def test_forms_need_the_csrf_token(world, loaded_phase, make_archive):
    client = Client(enforce_csrf_checks=True)
    alice = world.alpha.created_by
    client.force_login(alice)
    forms = [
        (reverse("team-create", args=["ntire"]), {"name": "Another"}),
        (reverse("team-invite", args=[world.alpha.pk]), {"username": "bob"}),
        (reverse("team-leave", args=[world.alpha.pk]), {}),
        (reverse("submission-select", args=[world.alpha_submission.pk]), {}),
        (reverse("submission-upload", args=["ntire", "dev"]), {"archive": upload_file(make_archive())}),
        (reverse("api-token-regenerate"), {}),
        (reverse("logout"), {}),
    ]
    for url, data in forms:
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "CSRF" in response.content.decode(), url
    # Nothing happened.
    assert Team.objects.count() == 2 and Invitation.objects.count() == 1  # the one that brought alice2 in
    assert Membership.objects.filter(team=world.alpha, user=alice).exists()
    assert Submission.objects.count() == 2 and not Submission.objects.filter(is_selected=True).exists()
    assert client.get(reverse("api-token")).status_code == 200  # still logged in

    # With the token from the form page, the same upload goes through.
    token = csrf_of(client, reverse("phase-detail", args=["ntire", "dev"]))
    response = client.post(reverse("submission-upload", args=["ntire", "dev"]),
                           {"archive": upload_file(make_archive()), "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Submission.objects.count() == 3

    # The token-authenticated API does not use CSRF.
    api_token = ApiToken.objects.get_or_create(user=alice)[0].key
    response = client.post(reverse("api-submit", args=[loaded_phase.pk]), {"archive": upload_file(make_archive())},
                           HTTP_AUTHORIZATION=f"Token {api_token}")
    assert response.status_code == 201


def test_login_form_needs_the_csrf_token(make_user):
    make_user("alice")
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    token = csrf_of(client, reverse("login"))
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD,
                                              "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response.url == reverse("home")


# --------------------------------------------------------------------------- accounts


def test_signup_login_logout(db, settings):
    client = Client(enforce_csrf_checks=True)
    token = csrf_of(client, reverse("signup"))
    form = {"username": "newbie", "email": "newbie@example.org", "password1": PASSWORD, "password2": PASSWORD,
            "csrfmiddlewaretoken": token}
    response = client.post(reverse("signup"), {**form, "password2": "something-else-1"})
    assert response.status_code == 200 and not get_user_model().objects.filter(username="newbie").exists()
    response = client.post(reverse("signup"), form)
    assert response.status_code == 302 and response.url == reverse("home")
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "newbie@example.org" and user.check_password(PASSWORD)
    home = client.get(reverse("home")).content.decode()
    assert "newbie" in home and "Log out" in home

    token = client.cookies["csrftoken"].value
    response = client.post(reverse("logout"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert client.get(reverse("api-token")).url.startswith(reverse("login"))

    token = csrf_of(client, reverse("login"))
    response = client.post(reverse("login"), {"username": "newbie", "password": "wrong-password",
                                              "csrfmiddlewaretoken": token})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    response = client.post(reverse("login"), {"username": "newbie", "password": PASSWORD,
                                              "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)
    assert client.get(reverse("api-token")).status_code == 200


def test_notification_email_goes_to_the_console_backend(settings, capsys, make_team, submit):
    """With the default console backend a scored run's notice is printed, no SMTP server needed."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    team = make_team("Alpha")
    submission = submit(team)
    assert transitions.transition(submission.pk, "validating", "v")
    assert transitions.transition(submission.pk, "scoring", "s")
    capsys.readouterr()
    assert pipeline.store_result(submission.pk, score_report(), 1.0) == "scored"
    printed = capsys.readouterr().out
    assert f"Subject: Submission {submission.pk} is scored" in printed
    assert "To: alpha@example.org" in printed
