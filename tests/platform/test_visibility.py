"""Scores reach only those the phase's visibility lets see them, on every surface.

A run is stored through the worker's own ``store_result`` (so the log line quoting the total is the real one)
with distinctive numbers, then every page, JSON answer, chart data block and API answer is read as each kind of
viewer: anonymous, a member of another team, a member of the team itself, an organizer.

The distinctive values all have three digits before the decimal point: a timestamp's seconds never do, so a
microsecond fraction in some ISO date can never pass for one of them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from accounts.models import ApiToken
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from competitions.models import Phase
from leaderboard.services import compute_rank_stability
from scoring.results import DatasetResult, ImageResult, ScoreReport
from submissions import pipeline
from submissions.models import Submission
from submissions.selectors import HIDDEN_SCORES_MESSAGE, restored_image_name
from tests.platform.conftest import DEV_PROFILE, INPUT_LAYOUT
from tests.support.archives import png_bytes

State = Submission.State

TOTAL = 314.159265
OVERALL = {"clipiqa": 271.828183, "musiq": 161.803399}
PER_DATASET = {"CelebA": {"clipiqa": 223.606797, "musiq": 264.575131},
               "Wider-Test": {"clipiqa": 282.842712, "musiq": 244.948974}}
PER_IMAGE = {"CelebA": {"clipiqa": 141.421356, "musiq": 173.205081},
             "Wider-Test": {"clipiqa": 316.227766, "musiq": 331.662479}}
ID_SIMILARITY = 0.7123456789
TERMS = {"clipiqa": 271.828183, "musiq": 1.61803399}
# Every way these numbers can be written on a page (full precision, or rounded to 4 or 2 places).
SECRETS = ("314.1", "314.2", "271.8", "161.8", "223.6", "264.5", "264.6", "282.8", "244.9", "141.4", "173.2",
           "316.2", "331.6", "331.7", "0.7123456", "1.61803", "1.6180")
FAILED = ("CelebA", INPUT_LAYOUT["CelebA"])  # its similarity is under the threshold


def report() -> ScoreReport:
    images = [ImageResult(dataset, stem, dict(PER_IMAGE[dataset]), 0.2 if dataset == "CelebA" else 0.9,
                          0.5 if dataset == "CelebA" else 0.3)
              for dataset, stem in INPUT_LAYOUT.items()]
    return ScoreReport(
        profile={"name": DEV_PROFILE, "max_failed_images": 10}, images=images,
        datasets=[DatasetResult(d, 1, dict(PER_DATASET[d]), ID_SIMILARITY, int(d == "CelebA")) for d in INPUT_LAYOUT],
        overall=dict(OVERALL), id_similarity=ID_SIMILARITY, failed_count=1, terms=dict(TERMS), total=TOTAL,
        valid=True, weights={"RN50.pt": "0" * 64}, official_weights=False, versions={"scoring": "test"}, device="cpu",
    )


@pytest.fixture
def world(phase, organizer, make_team, make_scored):
    """Alpha (alpha, alpha2) with the distinctive run, Bravo (bravo) with an ordinary one, and API tokens."""
    alpha = make_team("Alpha", members=["alpha2"])
    bravo = make_team("Bravo")
    submission = make_scored(alpha, 0, state=State.SCORING, with_result=False)
    assert pipeline.store_result(submission.pk, report(), 1.0) == State.SCORED
    make_scored(bravo, 0.5)
    # The board's rank-stability analysis, computed as the worker's task does: every surface below includes its tab.
    assert compute_rank_stability(phase.pk, resamples=20, seed=1) == "stored"
    # What the worker keeps of a failed image (the real pipeline's copy is tested in test_participant_pages).
    default_storage.save(restored_image_name(submission.pk, *FAILED), ContentFile(png_bytes((64, 64))))
    users = {"anonymous": None, "other team": bravo.created_by, "team": alpha.memberships.get(
        user__username="alpha2").user, "organizer": organizer}
    tokens = {who: ApiToken.objects.create(user=user).key for who, user in users.items() if user is not None}
    return {"phase": phase, "alpha": alpha, "bravo": bravo, "submission": submission, "users": users,
            "tokens": tokens}


def json_blocks(page: str) -> dict[str, Any]:
    """The page's ``<script type="application/json">`` blocks (chart data), parsed."""
    return {m.group(1): json.loads(m.group(2)) for m in re.finditer(
        r'<script id="([^"]+)" type="application/json">(.*?)</script>', page, re.S)}


def surfaces(client, world, who: str) -> dict[str, tuple[int, str]]:
    """Every place a score could show, as ``who`` sees it: name -> (status, body)."""
    phase, submission, alpha = world["phase"], world["submission"], world["alpha"]
    client.logout()
    if world["users"][who] is not None:
        client.force_login(world["users"][who])
    pages = {
        "leaderboard html": reverse("leaderboard", args=["ntire", phase.slug]),
        "leaderboard json": reverse("leaderboard-json", args=["ntire", phase.slug]),
        # The leaderboard's charts are fetched by the page (static/charts.js): asked for directly here, so
        # that a phase whose board is hidden is checked too.
        "chart data leaderboard-charts": reverse("leaderboard-charts", args=["ntire", phase.slug]) + "?page=1",
        "phase page": reverse("phase-detail", args=["ntire", phase.slug]),
        "submission page": reverse("submission-detail", args=[submission.pk]),
        "status json": reverse("submission-status", args=[submission.pk]),
        "team page": reverse("team-detail", args=[alpha.pk]),
        "rank stability html": reverse("rank-stability", args=["ntire", phase.slug]),
        "rank stability json": reverse("rank-stability-json", args=["ntire", phase.slug]),
    }
    seen = {}
    for name, url in pages.items():
        response = client.get(url)
        seen[name] = (response.status_code, response.content.decode())
    for _status, body in list(seen.values()):
        for block, data in json_blocks(body).items():
            seen[f"chart data {block}"] = (200, json.dumps(data))
    client.logout()
    auth = {"HTTP_AUTHORIZATION": f"Token {world['tokens'][who]}"} if who in world["tokens"] else {}
    for name, url in (("api submission", reverse("api-submission", args=[submission.pk])),
                      ("api leaderboard", reverse("api-leaderboard", args=[phase.pk])),
                      ("api rank stability", reverse("api-rank-stability", args=[phase.pk]))):
        response = client.get(url, **auth)
        seen[name] = (response.status_code, response.content.decode())
    return seen


def leaked(body: str) -> list[str]:
    return [secret for secret in SECRETS if secret in body]


def restored_status(client, world, who: str) -> int:
    client.logout()
    if world["users"][who] is not None:
        client.force_login(world["users"][who])
    return client.get(reverse("submission-restored-image", args=[world["submission"].pk, *FAILED])).status_code


EXPECTED_STATUS = {  # who -> surface -> status (200 where not listed)
    "anonymous": {"submission page": 404, "status json": 404, "team page": 302, "api submission": 401},
    "other team": {"submission page": 404, "status json": 404, "team page": 404, "api submission": 404},
    "team": {}, "organizer": {},
}


def check_statuses(seen: dict[str, tuple[int, str]], who: str) -> None:
    for name, (status, _) in seen.items():
        assert status == EXPECTED_STATUS[who].get(name, 200), (who, name, status)


def test_hidden_phase_shows_no_score_to_anyone_but_organizers_until_published(client, world):
    phase: Phase = world["phase"]
    phase.visibility, phase.published = Phase.Visibility.HIDDEN, False
    phase.save()
    assert compute_rank_stability(phase.pk, resamples=20, seed=1) == "stored"  # of the hidden board

    for who in ("anonymous", "other team", "team"):
        seen = surfaces(client, world, who)
        check_statuses(seen, who)
        for name, (_, body) in seen.items():
            assert not leaked(body), (who, name, leaked(body))
        assert json.loads(seen["chart data leaderboard-charts"][1]) == {"figures": {}}, who
        assert not any(name.startswith("chart data") for name in seen if name != "chart data leaderboard-charts"), \
            (who, sorted(seen))
        assert restored_status(client, world, who) == 404, who
        for name in ("rank stability html", "rank stability json", "api rank stability"):
            assert "rank_counts" not in seen[name][1] and "Alpha" not in seen[name][1], (who, name)
    # The team sees its run, its state and its log, with the scored line reworded.
    seen = surfaces(client, world, "team")
    status = json.loads(seen["status json"][1])
    assert status["state"] == "scored" and "result" not in status
    assert status["log"][-1]["message"] == HIDDEN_SCORES_MESSAGE
    assert "hidden until the organizers publish" in seen["submission page"][1]
    assert 'id="images"' not in seen["submission page"][1]
    assert "hidden until the organizers publish" in seen["phase page"][1]
    assert json.loads(seen["api submission"][1])["state"] == "scored"
    # The e-mail telling the team that the run is scored quotes no score either.
    assert mail.outbox and not any(leaked(m.subject + m.body) for m in mail.outbox)

    seen = surfaces(client, world, "organizer")
    check_statuses(seen, "organizer")
    for name in ("leaderboard html", "leaderboard json", "submission page", "status json", "team page",
                 "api submission", "api leaderboard", "chart data leaderboard-charts", "chart data team-charts",
                 "chart data submission-charts"):
        assert leaked(seen[name][1]), name
    assert "314.1" in seen["chart data leaderboard-charts"][1] and "141.4" in seen["chart data submission-charts"][1]
    assert "Organizer preview" in seen["leaderboard html"][1]
    for name in ("rank stability json", "api rank stability"):
        assert json.loads(seen[name][1])["analysis"]["teams"][0]["team"] == "Alpha", name
    assert "chart data stability-figures" in seen
    assert restored_status(client, world, "organizer") == 200

    phase.published = True
    phase.save()
    assert compute_rank_stability(phase.pk, resamples=20, seed=1) == "stored"  # publishing made a new board
    for who in ("anonymous", "other team", "team", "organizer"):
        seen = surfaces(client, world, who)
        check_statuses(seen, who)
        assert json.loads(seen["rank stability json"][1])["analysis"]["teams"][0]["team"] == "Alpha", who
        for name in ("leaderboard html", "leaderboard json", "api leaderboard", "chart data leaderboard-charts"):
            assert "314.1" in seen[name][1], (who, name)
        board = json.loads(seen["leaderboard json"][1])
        assert board["visible"] is True and board["rows"][0]["total"] == pytest.approx(TOTAL), who
    seen = surfaces(client, world, "team")
    for name in ("phase page", "submission page", "status json", "team page", "api submission",
                 "chart data team-charts", "chart data submission-charts"):
        assert leaked(seen[name][1]), name
    assert json.loads(seen["status json"][1])["result"]["total"] == pytest.approx(TOTAL)
    assert "total 314.1593" in json.loads(seen["status json"][1])["log"][-1]["message"]
    assert restored_status(client, world, "team") == 200
    for who in ("anonymous", "other team"):
        assert restored_status(client, world, who) == 404, who


def test_team_visibility_shows_a_team_its_own_scores_and_nobody_else(client, world):
    phase: Phase = world["phase"]
    phase.visibility = Phase.Visibility.TEAM
    phase.save()

    for who in ("anonymous", "other team"):
        seen = surfaces(client, world, who)
        check_statuses(seen, who)
        for name, (_, body) in seen.items():
            assert not leaked(body), (who, name, leaked(body))
        assert json.loads(seen["leaderboard json"][1])["visible"] is False
        assert restored_status(client, world, who) == 404, who

    seen = surfaces(client, world, "team")
    check_statuses(seen, "team")
    for name in ("leaderboard html", "leaderboard json", "api leaderboard"):  # no ranking, not even for the team
        assert not leaked(seen[name][1]), name
    for name in ("phase page", "submission page", "status json", "team page", "api submission",
                 "chart data team-charts", "chart data submission-charts"):
        assert leaked(seen[name][1]), name
    assert restored_status(client, world, "team") == 200

    seen = surfaces(client, world, "organizer")
    for name in ("leaderboard html", "leaderboard json", "api leaderboard", "chart data leaderboard-charts",
                 "submission page", "team page"):
        assert leaked(seen[name][1]), name


def test_public_phase_shows_everyone_the_leaderboard_and_only_the_team_its_pages(client, world):
    for who in ("anonymous", "other team", "team", "organizer"):
        seen = surfaces(client, world, who)
        check_statuses(seen, who)
        for name in ("leaderboard html", "leaderboard json", "api leaderboard", "chart data leaderboard-charts"):
            assert "314.1" in seen[name][1], (who, name)
        if who in ("anonymous", "other team"):
            assert seen["submission page"][0] == 404 and not leaked(seen["submission page"][1])
