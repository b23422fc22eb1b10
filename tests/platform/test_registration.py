"""Registration: open or by approval, the terms' exact version, revocation; the one rule that guards
teams, joins and submissions (``competitions.permissions.participation_refusal``)."""

from __future__ import annotations

import pytest
from django.core import mail

from competitions.models import Challenge, ChallengePage, Registration
from competitions.permissions import may_take_part, participation_refusal
from competitions.services import (
    RegistrationError,
    accept_terms,
    decide_registrations,
    register,
    revoke_registration,
)
from submissions.services import SubmissionRefused
from teams import services as teams
from teams.services import TeamError


def _register(user, challenge, version=0):
    return register(user=user, challenge=challenge, terms_version=version, full_name="Ada Lovelace",
                    affiliation="Analytical Engines Ltd")


@pytest.fixture
def terms(challenge) -> ChallengePage:
    return ChallengePage.objects.create(challenge=challenge, kind=ChallengePage.Kind.TERMS, slug="terms",
                                        title="Terms", body="Results are published with your name.", version=1)


@pytest.fixture
def approval(challenge) -> Challenge:
    challenge.registration_mode = Challenge.RegistrationMode.APPROVAL
    challenge.save(update_fields=["registration_mode"])
    return challenge


def test_a_newcomer_is_refused_a_team_until_registered(challenge, terms, make_user):
    ada = make_user("ada", registered=False)
    assert "Register for" in participation_refusal(ada, challenge)
    with pytest.raises(TeamError, match="Register for"):
        teams.create_team(challenge=challenge, name="Ada's", user=ada)
    registration = _register(ada, challenge, version=1)
    # Open registration: approved at once, the exact terms recorded with the time.
    assert registration.status == Registration.Status.APPROVED
    assert registration.terms_version == 1 and registration.terms_sha256 == terms.sha256
    assert registration.terms_accepted_at is not None
    assert ada.profile.full_name == "Ada Lovelace" and ada.profile.affiliation == "Analytical Engines Ltd"
    assert teams.create_team(challenge=challenge, name="Ada's", user=ada).name == "Ada's"


def test_accepting_terms_one_has_not_seen_is_refused(challenge, terms, make_user):
    ada = make_user("ada", registered=False)
    with pytest.raises(RegistrationError, match="changed while you read") as refused:
        _register(ada, challenge, version=0)  # read before the Terms page existed
    assert refused.value.code == "terms_changed"
    assert not Registration.objects.filter(user=ada).exists()


def test_a_registration_needs_name_and_affiliation(challenge, make_user):
    ada = make_user("ada", registered=False)
    with pytest.raises(RegistrationError, match="full name") as refused:
        register(user=ada, challenge=challenge, terms_version=0, full_name=" ", affiliation="Somewhere")
    assert refused.value.code == "profile_incomplete"
    assert not Registration.objects.filter(user=ada).exists()


def test_approval_flow_refuses_until_approved_and_emails_either_way(approval, terms, make_user, make_team,
                                                                   django_capture_on_commit_callbacks):
    team = make_team("Hosts")
    link = teams.invite(team=team, by_user=team.created_by)
    waiting = [make_user(name, registered=False) for name in ("ann", "ben", "cid")]
    registrations = [_register(user, approval, version=1) for user in waiting]
    assert {r.status for r in registrations} == {Registration.Status.PENDING}
    for user in waiting:
        assert "waiting for the organizers' approval" in participation_refusal(user, approval)
        with pytest.raises(TeamError, match="waiting"):
            teams.join(token=link.token, user=user)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):  # the emails leave once the decision is stored
        assert decide_registrations(challenge=approval, registration_ids=[r.pk for r in registrations[:2]],
                                    approve=True, by_user=None, message="Welcome aboard.") == 2
        assert decide_registrations(challenge=approval, registration_ids=[registrations[2].pk], approve=False,
                                    by_user=None, message="Please use your institutional address.") == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["ann@example.org", "ben@example.org", "cid@example.org"]
    denied_mail = next(m for m in mail.outbox if m.to == ["cid@example.org"])
    assert "declined" in denied_mail.subject and "institutional address" in denied_mail.body
    assert "Welcome aboard." in next(m for m in mail.outbox if m.to == ["ann@example.org"]).body
    assert teams.join(token=link.token, user=waiting[0]) == team
    assert may_take_part(waiting[1], approval)
    assert "declined your registration. Their message: Please use" in participation_refusal(waiting[2], approval)
    # Denied stays denied: asking again is refused, the organizers can still approve.
    with pytest.raises(RegistrationError) as again:
        _register(waiting[2], approval, version=1)
    assert again.value.code == "registration_closed"


def test_another_challenges_registration_does_not_count(challenge, make_user):
    from competitions.services import create_challenge

    ada = make_user("ada")  # registered in ``challenge`` only
    other = create_challenge(slug="other", title="Other challenge")
    assert may_take_part(ada, challenge)
    assert "Register for Other challenge" in participation_refusal(ada, other)


def test_changed_terms_are_asked_again_before_the_next_submission(challenge, terms, make_team, submit):
    team = make_team("Alpha")
    owner = team.created_by
    assert submit(team).pk
    terms.body += "\n\nNew: the test phase's factsheet is mandatory."
    terms.version += 1
    terms.save()
    with pytest.raises(SubmissionRefused, match="terms of .* changed"):
        submit(team)
    accepted = accept_terms(user=owner, challenge=challenge, terms_version=2)
    assert accepted.terms_version == 2 and accepted.terms_sha256 == terms.sha256
    assert submit(team).pk


def test_a_revoked_participant_is_refused_and_their_teams_submissions_stay(challenge, make_team, submit,
                                                                          make_user, organizer,
                                                                          django_capture_on_commit_callbacks):
    team = make_team("Alpha", members=["bob"])
    owner = team.created_by
    first = submit(team)
    registration = Registration.objects.get(user=owner, challenge=challenge)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        revoke_registration(challenge=challenge, registration_id=registration.pk, by_user=organizer,
                            message="Two accounts for one person.")
    assert mail.outbox and "revoked" in mail.outbox[0].subject and mail.outbox[0].to == [owner.email]
    with pytest.raises(SubmissionRefused, match="revoked your participation. Their message: Two accounts"):
        submit(team, user=owner)
    with pytest.raises(TeamError, match="revoked"):
        teams.create_team(challenge=challenge, name="Fresh", user=owner)
    first.refresh_from_db()
    assert team.submissions.filter(pk=first.pk).exists()  # what the team submitted stays
    bob = team.memberships.exclude(user=owner).get().user
    assert submit(team, user=bob).pk  # the other member still takes part


def test_organizers_take_part_without_registering(challenge, organizer):
    assert may_take_part(organizer, challenge)
    assert teams.create_team(challenge=challenge, name="Organizers' baseline", user=organizer)


def test_unverified_email_cannot_register(challenge, make_user, settings):
    from accounts.services import email_verification_token, verify_email

    settings.FR_EMAIL_VERIFICATION = True
    ada = make_user("ada", registered=False)
    with pytest.raises(RegistrationError) as refused:
        _register(ada, challenge)
    assert refused.value.code == "email_unverified"
    assert not Registration.objects.filter(user=ada).exists()
    verify_email(email_verification_token(ada))
    assert _register(ada, challenge).status == Registration.Status.APPROVED
    # A changed address is unverified again: the participant is refused until they verify it.
    ada.email = "ada@elsewhere.example"
    ada.save()
    assert "Verify your email address" in participation_refusal(ada, challenge)


def test_an_invitation_link_tells_a_newcomer_to_register_first(client, challenge, make_team, make_user):
    team = make_team("Hosts")
    link = teams.invite(team=team, by_user=team.created_by)
    client.force_login(make_user("newcomer", registered=False))
    page = client.get(f"/teams/join/{link.token}/").content.decode()
    assert 'id="participation-refusal"' in page and f'href="/c/{challenge.slug}/#registration"' in page
    refused = client.post(f"/teams/join/{link.token}/")
    assert refused.status_code == 302 and refused["Location"] == f"/c/{challenge.slug}/"
    assert not team.memberships.filter(user__username="newcomer").exists()
