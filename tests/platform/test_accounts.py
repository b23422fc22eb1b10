"""Accounts: unique email addresses (case-insensitive, in the form and in the database), Django's password
validators plus the numeric one, password reset and change with Django's own views and tokens under the
login's rate limits, and optional email verification at sign-up."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tests.platform.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "an-Other-passw0rd?"  # noqa: S105 - a test password


def signup(client, username: str, email: str, password: str = PASSWORD):
    return client.post("/accounts/signup/", {"username": username, "email": email, "password1": password,
                                             "password2": password})


def test_email_addresses_are_unique_whatever_their_case(client):
    assert signup(client, "alice", "alice@example.org").status_code == 302
    client.logout()
    refused = signup(client, "alice2", "ALICE@Example.ORG")
    assert refused.status_code == 200 and "An account with this email address exists already" in refused.text
    assert not get_user_model().objects.filter(username="alice2").exists()
    # The database holds it too, whatever writes the row.
    with pytest.raises(IntegrityError), transaction.atomic():
        get_user_model().objects.create_user("alice3", "Alice@example.org", PASSWORD)
    # Accounts without an address (made by an admin) do not clash with each other.
    get_user_model().objects.create_user("no-mail-1", "", PASSWORD)
    get_user_model().objects.create_user("no-mail-2", "", PASSWORD)


def test_password_validators_include_the_numeric_one_and_the_projects_passwords_pass(client):
    refused = signup(client, "numbers", "numbers@example.org", password="8302749165")
    assert refused.status_code == 200 and "entirely numeric" in refused.text
    assert not get_user_model().objects.filter(username="numbers").exists()
    with pytest.raises(ValidationError):
        validate_password("password")
    # Every password the demo and the tests sign up with still passes.
    from organizers.management.commands.demo import DEMO_PASSWORD
    from tests.browser.conftest import PASSWORD as BROWSER_PASSWORD
    from tests.support.browser import ORGANIZER_PASSWORD

    for username, password in (("demo", DEMO_PASSWORD), ("organizer", DEMO_PASSWORD), ("alice", PASSWORD),
                               ("alice", BROWSER_PASSWORD), ("boss", ORGANIZER_PASSWORD)):
        validate_password(password, get_user_model()(username=username, email=f"{username}@example.org"))


def _reset_link(client, email: str) -> str:
    mail.outbox.clear()
    response = client.post("/accounts/password_reset/", {"email": email})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [email.lower()]  # to the address the account has
    return re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)


def test_password_reset_link_works_once(client, make_user):
    make_user("alice")
    link = _reset_link(client, "Alice@Example.org")  # the address as the person types it
    form = client.get(link, follow=True)  # Django swaps the token for a session and shows the form
    assert form.status_code == 200 and 'id="password-reset-confirm"' in form.text
    done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    assert client.login(username="alice", password=NEW_PASSWORD)
    client.logout()
    again = client.get(link, follow=True)
    assert 'id="reset-link-invalid"' in again.text  # the token is used up once the password changed
    assert not client.login(username="alice", password=PASSWORD)


def test_an_expired_reset_link_is_refused(client, make_user, settings):
    settings.PASSWORD_RESET_TIMEOUT = 1  # seconds
    make_user("alice")
    link = _reset_link(client, "alice@example.org")
    time.sleep(2.1)
    expired = client.get(link, follow=True)
    assert 'id="reset-link-invalid"' in expired.text
    assert client.login(username="alice", password=PASSWORD)  # nothing changed


def test_an_unknown_address_learns_nothing(client):
    mail.outbox.clear()
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.org"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert mail.outbox == []


def test_password_reset_is_rate_limited_like_login(client, make_user):
    make_user("alice")
    codes = [client.post("/accounts/password_reset/", {"email": "alice@example.org"}).status_code
             for _ in range(12)]
    assert codes[:10] == [302] * 10 and codes[10:] == [429, 429]


def test_password_change(client, make_user):
    make_user("alice")
    assert client.login(username="alice", password=PASSWORD)
    wrong = client.post("/accounts/password_change/", {"old_password": "not-it", "new_password1": NEW_PASSWORD,
                                                       "new_password2": NEW_PASSWORD})
    assert wrong.status_code == 200 and "incorrectly" in wrong.text
    done = client.post("/accounts/password_change/", {"old_password": PASSWORD, "new_password1": NEW_PASSWORD,
                                                      "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/accounts/password_change/done/"
    client.logout()
    assert client.login(username="alice", password=NEW_PASSWORD)


def test_email_verification_at_signup(client, settings, challenge):
    from competitions.models import Registration

    settings.FR_EMAIL_VERIFICATION = True
    mail.outbox.clear()
    assert signup(client, "vera", "vera@example.org").status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["vera@example.org"]
    link = re.search(r"http://testserver(/accounts/verify/\S+/)", mail.outbox[0].body).group(1)
    form = {"terms_version": "0", "full_name": "Vera V", "affiliation": "Lab", "accept_terms": "on"}
    refused = client.post(f"/c/{challenge.slug}/register/", form, follow=True)
    assert "Verify your email address" in refused.text
    assert not Registration.objects.filter(user__username="vera").exists()
    assert client.get(link[:-5] + "xxxx/", follow=True).text.count("not valid") == 1  # a tampered link
    verified = client.get(link, follow=True)
    assert "Email address vera@example.org verified." in verified.text and 'id="email-verified"' in verified.text
    registered = client.post(f"/c/{challenge.slug}/register/", form, follow=True)
    assert 'data-status="approved"' in registered.text


def test_profile_fields_are_edited_on_the_account_page(client, make_user):
    user = make_user("alice")
    client.force_login(user)
    saved = client.post("/accounts/", {"full_name": " Alice Liddell ", "affiliation": "Wonderland U"}, follow=True)
    assert "Profile saved." in saved.text and 'value="Wonderland U"' in saved.text
    user.profile.refresh_from_db()
    assert (user.profile.full_name, user.profile.affiliation) == ("Alice Liddell", "Wonderland U")
    refused = client.post("/accounts/", {"full_name": "", "affiliation": "Nowhere"}, follow=True)
    assert "Give your full name and your affiliation" in refused.text
    user.profile.refresh_from_db()
    assert user.profile.affiliation == "Wonderland U"  # nothing lost
