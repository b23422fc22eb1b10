"""The one create service (submissions.services.create_submission) and its guards, through each of its four
callers: the web form, the one-request API, a finished direct upload (real S3: SeaweedFS) and an organizer's
baseline. A refused upload stores nothing; a baseline skips only the dates, the membership and the quota."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
import requests
from accounts.models import ApiToken
from django.utils import timezone

from organizers.services import OrganizerError, add_baseline
from submissions import uploads
from submissions.models import PendingUpload, Submission
from submissions.refusals import Refusal, SubmissionRefused
from submissions.services import StoredArchive, create_submission
from teams.models import Membership, Team, team_name_key
from tests.platform.conftest import upload_file
from tests.platform.test_abandoned_uploads import s3_server, s3_storage  # noqa: F401  (fixtures)

CALLERS = ("web", "api", "direct", "baseline")
R = Refusal
# guard -> caller -> the refusal expected (None: the caller legitimately skips the guard and the upload goes in)
EXPECTED: dict[str, dict[str, Refusal | None]] = {
    "disqualified": dict.fromkeys(CALLERS, R.DISQUALIFIED),
    "phase_closed": {"web": R.PHASE_CLOSED, "api": R.PHASE_CLOSED, "direct": R.PHASE_CLOSED, "baseline": None},
    # web and API act for the user's team, so a user without one has none; a direct upload keeps its team.
    "left_the_team": {"web": R.NO_TEAM, "api": R.NO_TEAM, "direct": R.NOT_A_MEMBER, "baseline": None},
    "empty": dict.fromkeys(CALLERS, R.EMPTY),
    # web and API stop the body while it arrives (upload_limits); the others know the size first.
    "too_large": {"web": R.TOO_LARGE_WHILE_RECEIVED, "api": R.TOO_LARGE_WHILE_RECEIVED, "direct": R.TOO_LARGE,
                  "baseline": R.TOO_LARGE},
    "daily_quota": {"web": R.DAILY_QUOTA, "api": R.DAILY_QUOTA, "direct": R.DAILY_QUOTA, "baseline": None},
    "one_team_per_phase": {"web": R.ONE_TEAM_PER_PHASE, "api": R.ONE_TEAM_PER_PHASE,
                           "direct": R.ONE_TEAM_PER_PHASE, "baseline": None},
}


def refusal_in(text: str) -> Refusal:
    """The code whose message (its parameters any text) appears in ``text``."""
    def pattern(code: Refusal) -> str:
        return ".+?".join(re.escape(part.split("}")[-1]) for part in code.template.replace("{{", "{").split("{"))

    found = [code for code in Refusal if re.search(pattern(code), text)]
    assert len(found) == 1, (found, text[:300])
    return found[0]


def apply_guard(guard: str, *, phase, team, user, make_team, make_archive) -> None:
    if guard == "disqualified":
        Team.objects.filter(pk=team.pk).update(disqualified=True)
    elif guard == "phase_closed":
        phase.closes_at = timezone.now() - timedelta(minutes=1)
        phase.save()
    elif guard == "left_the_team":
        Membership.objects.filter(team=team, user=user).delete()
    elif guard == "too_large":
        phase.max_archive_bytes = 100
        phase.save()
    elif guard == "daily_quota":
        phase.max_per_day = 1
        phase.save()
        Submission.objects.create(phase=phase, team=team, submitted_by=user, archive="x.zip", archive_size=1,
                                  description="setup")
    elif guard == "one_team_per_phase":
        other = make_team("Other")
        Submission.objects.create(phase=phase, team=other, submitted_by=user, archive="y.zip", archive_size=1,
                                  description="setup")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("guard", list(EXPECTED))
def test_each_guard_through_each_caller(guard, caller, request, client, loaded_phase, make_team, make_archive,
                                        organizer, storage):
    phase, expected = loaded_phase, EXPECTED[guard][caller]
    if caller == "baseline":
        user = organizer
        team = Team.objects.create(challenge=phase.challenge, name="Base", name_key=team_name_key("Base"),
                                   created_by=organizer, is_baseline=True)
    else:
        team = make_team("Alpha")
        user = team.created_by
    archive = make_archive()
    if guard == "empty":
        archive.write_bytes(b"")
    before = set(Submission.objects.exclude(description="setup").values_list("pk", flat=True))

    if caller == "direct":
        s3 = request.getfixturevalue("s3_storage")
        server = request.getfixturevalue("s3_server")
        data = archive.read_bytes()
        if guard == "empty":  # known before anything is stored: refused at the start
            with pytest.raises(SubmissionRefused) as refused:
                uploads.start_upload(phase=phase, team=team, user=user, size=len(data))
            assert refused.value.code == expected and not PendingUpload.objects.exists()
            return
        started = uploads.start_upload(phase=phase, team=team, user=user, size=len(data))
        etag = requests.put(started.part_urls[0], data=data, timeout=30).headers["ETag"]
        apply_guard(guard, phase=phase, team=team, user=user, make_team=make_team, make_archive=make_archive)
        started.pending.refresh_from_db()
        with pytest.raises(SubmissionRefused) as refused:
            uploads.finish_upload(pending=started.pending, user=user, parts=[{"number": 1, "etag": etag}])
        assert refused.value.code == expected
        assert s3.list_objects_v2(Bucket=server.bucket).get("KeyCount", 0) == 0  # the refused archive is gone
    else:
        apply_guard(guard, phase=phase, team=team, user=user, make_team=make_team, make_archive=make_archive)
        team.refresh_from_db()
        if caller == "baseline":
            try:
                add_baseline(phase=phase, name="Base", upload=upload_file(archive), by_user=user, enqueue=False)
                outcome = None
            except OrganizerError as exc:
                outcome = refusal_in(str(exc))
        elif caller == "api":
            token = ApiToken.objects.get_or_create(user=user)[0].key
            response = client.post(f"/api/v1/phases/{phase.pk}/submissions", {"archive": upload_file(archive)},
                                   HTTP_AUTHORIZATION=f"Token {token}")
            outcome = None if response.status_code == 201 else Refusal(response.json()["code"])
            if outcome is not None:
                assert response.status_code == outcome.status
        else:
            client.force_login(user)
            response = client.post(f"/c/{phase.challenge.slug}/p/{phase.slug}/submit/",
                                   {"archive": upload_file(archive)}, follow=True)
            page = html.unescape(response.content.decode())
            created = set(Submission.objects.exclude(description="setup").values_list("pk", flat=True)) - before
            outcome = None if created else refusal_in(page)
        assert outcome == expected, (guard, caller)
    created = set(Submission.objects.exclude(description="setup").values_list("pk", flat=True)) - before
    if expected is None:
        assert len(created) == 1
    else:
        assert not created
        assert not list((storage / "media" / "submissions").rglob(f"{phase.pk}-{team.pk}*.zip"))


def test_another_challenges_team_is_refused(loaded_phase, make_team, make_archive):
    from competitions.services import create_challenge

    other = make_team("Gamma", in_challenge=create_challenge(slug="other", title="Other"))
    for upload in (upload_file(make_archive()), StoredArchive("submissions/never-stored.zip", 10)):
        with pytest.raises(SubmissionRefused) as refused:
            create_submission(phase=loaded_phase, team=other, user=other.created_by, upload=upload)
        assert refused.value.code == Refusal.WRONG_CHALLENGE
    assert not Submission.objects.exists()


def test_a_baseline_is_only_for_a_baseline_team(loaded_phase, make_team, make_archive, organizer):
    team = make_team("Alpha")
    with pytest.raises(ValueError):
        create_submission(phase=loaded_phase, team=team, user=organizer, upload=upload_file(make_archive()),
                          baseline=True)
