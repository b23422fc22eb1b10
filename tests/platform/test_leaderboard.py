"""The leaderboard, from result rows written directly: ranking, selection rules, visibility, queries."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from accounts.models import ApiToken
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from competitions.models import Phase
from leaderboard.selectors import phase_leaderboard
from submissions.models import Submission
from tests.platform.conftest import NTIRE_DATASETS

State = Submission.State
T0 = timezone.now() - timedelta(days=2)


def at(minutes: int):
    return T0 + timedelta(minutes=minutes)


def board_json(client, phase_slug: str = "dev") -> dict:
    response = client.get(reverse("leaderboard-json", args=["ntire", phase_slug]))
    assert response.status_code == 200
    return response.json()


def board_html(client) -> str:
    response = client.get(reverse("leaderboard", args=["ntire", "dev"]))
    assert response.status_code == 200
    return response.content.decode()


def html_teams(page: str) -> list[str]:
    """Team names of the main table's rows, in order."""
    table = page.split('id="leaderboard"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr [^>]*data-team="([^"]+)"', table)


def ranking(board: dict) -> list[tuple[int | None, str]]:
    return [(row["rank"], row["team"]) for row in board["rows"]]


def test_valid_teams_ranked_by_total_and_teams_over_the_failed_limit_listed_below(client, make_team, make_scored):
    teams = {name: make_team(name) for name in ("Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot")}
    make_scored(teams["Alpha"], 0.51, at=at(1))
    make_scored(teams["Bravo"], 0.93, at=at(2))
    make_scored(teams["Charlie"], 0.72, at=at(3))
    make_scored(teams["Delta"], 2.5, failed=11, at=at(4))  # best total, but over the limit of 10
    make_scored(teams["Echo"], 1.41, failed=10, at=at(5))  # exactly at the limit: valid
    make_scored(teams["Foxtrot"], 0.2, failed=40, at=at(6))

    board = board_json(client)
    assert board["visible"] is True and board["notice"] == ""
    assert ranking(board) == [(1, "Echo"), (2, "Bravo"), (3, "Charlie"), (4, "Alpha"), (None, "Delta"),
                              (None, "Foxtrot")]
    assert [row["id_valid"] for row in board["rows"]] == [True, True, True, True, False, False]
    assert [row["total"] for row in board["rows"]] == pytest.approx([1.41, 0.93, 0.72, 0.51, 2.5, 0.2])
    assert board["metrics"] == ["clipiqa", "musiq"]
    assert board["rows"][0]["metrics"] == pytest.approx({"clipiqa": 1.41 / 2, "musiq": 1.41 * 50})

    page = board_html(client)
    assert html_teams(page) == ["Echo", "Bravo", "Charlie", "Alpha", "Delta", "Foxtrot"]
    assert page.count('class="invalid"') == 2
    assert "1.4100" in page and "CLIP-IQA" in page and "MUSIQ" in page


def test_equal_totals_are_ordered_by_the_earlier_submission(client, make_team, make_scored):
    zulu, alpha, mike = make_team("Zulu"), make_team("Alpha"), make_team("Mike")
    make_scored(alpha, 0.8, at=at(30))
    make_scored(zulu, 0.8, at=at(10))  # submitted first: ranked first despite its name
    make_scored(mike, 0.8, at=at(20))
    expected = [(1, "Zulu"), (2, "Mike"), (3, "Alpha")]
    assert ranking(board_json(client)) == expected
    assert ranking(board_json(client)) == expected  # and the same each time


def test_only_scored_submissions_appear(client, make_team, make_scored):
    alpha, bravo, charlie = make_team("Alpha"), make_team("Bravo"), make_team("Charlie")
    counted = make_scored(alpha, 0.5, at=at(1))
    # Result rows of runs that are not "scored" (a stale row, a re-run in progress) never count.
    for minutes, state in enumerate((State.FAILED, State.SUBMITTED, State.SCORING, State.REJECTED,
                                     State.CANCELLED), start=2):
        make_scored(alpha, 9.0, state=state, at=at(minutes), datasets=["LFW-Test"])
        make_scored(bravo, 9.0, state=state, at=at(minutes), datasets=["LFW-Test"])
    make_scored(bravo, 0, state=State.SUBMITTED, with_result=False)
    make_scored(charlie, 0.6, at=at(20))

    board = board_json(client)
    assert ranking(board) == [(1, "Charlie"), (2, "Alpha")]
    assert board["rows"][1]["submission"] == counted.pk and board["rows"][1]["total"] == pytest.approx(0.5)
    assert list(board["datasets"]) == ["CelebA"]  # the LFW-Test rows belong to uncounted runs
    assert "Bravo" not in board_html(client)


def test_best_valid_submission_counts_by_default(client, phase, make_team, make_scored):
    assert phase.selection == Phase.Selection.BEST
    alpha, bravo, charlie = make_team("Alpha"), make_team("Bravo"), make_team("Charlie")
    make_scored(alpha, 0.5, at=at(1))
    make_scored(alpha, 0.95, failed=25, at=at(2))  # higher, but not valid
    best = make_scored(alpha, 0.7, at=at(3))
    make_scored(alpha, 0.6, at=at(4))
    make_scored(bravo, 0.99, failed=30, at=at(5))  # no valid run at all: listed, unranked
    make_scored(bravo, 0.98, failed=12, at=at(6))
    first = make_scored(charlie, 0.65, at=at(7))
    make_scored(charlie, 0.65, at=at(8))  # the same total later: the first one counts

    board = board_json(client)
    assert ranking(board) == [(1, "Alpha"), (2, "Charlie"), (None, "Bravo")]
    assert [row["submission"] for row in board["rows"][:2]] == [best.pk, first.pk]
    assert board["rows"][2]["total"] == pytest.approx(0.99)


def test_latest_rule_counts_the_latest_scored_submission(client, phase, make_team, make_scored):
    phase.selection = Phase.Selection.LATEST
    phase.save()
    alpha, bravo = make_team("Alpha"), make_team("Bravo")
    make_scored(alpha, 0.9, at=at(1))
    latest = make_scored(alpha, 0.3, at=at(2))
    make_scored(alpha, 0.0, state=State.FAILED, at=at(3), with_result=False)
    make_scored(alpha, 5.0, state=State.SCORING, at=at(4))  # not finished: does not count yet
    make_scored(bravo, 0.2, at=at(5))
    make_scored(bravo, 0.4, failed=30, at=at(6))  # the latest is invalid: that is what counts

    board = board_json(client)
    assert ranking(board) == [(1, "Alpha"), (None, "Bravo")]
    assert board["rows"][0]["submission"] == latest.pk
    assert board["rows"][1]["total"] == pytest.approx(0.4)


def test_selected_rule_counts_the_teams_choice(client, phase, make_team, make_scored):
    phase.selection = Phase.Selection.SELECTED
    phase.save()
    alpha, bravo = make_team("Alpha"), make_team("Bravo")
    high = make_scored(alpha, 0.9, at=at(1))
    chosen = make_scored(alpha, 0.4, at=at(2), selected=True)
    make_scored(bravo, 0.5, at=at(3))
    make_scored(bravo, 0.8, at=at(4))  # no choice made: the best valid one counts

    board = board_json(client)
    assert ranking(board) == [(1, "Bravo"), (2, "Alpha")]
    assert board["rows"][1]["submission"] == chosen.pk

    # The team changes its choice on the submission page; one selected run per team.
    client.force_login(alpha.created_by)
    assert client.post(reverse("submission-select", args=[high.pk])).status_code == 302
    assert list(Submission.objects.filter(team=alpha, is_selected=True).values_list("pk", flat=True)) == [high.pk]
    board = board_json(client)
    assert ranking(board) == [(1, "Alpha"), (2, "Bravo")]
    assert board["rows"][0]["submission"] == high.pk


def test_disqualified_teams_are_hidden(client, make_team, make_scored):
    cheat, honest = make_team("Cheaters"), make_team("Honest")
    make_scored(cheat, 3.0, datasets=["CelebA", "Wider-Test"])
    make_scored(honest, 0.5, datasets=["CelebA", "Wider-Test"])
    cheat.disqualified = True
    cheat.save()
    board = board_json(client)
    assert ranking(board) == [(1, "Honest")]
    assert all([r["team"] for r in rows] == ["Honest"] for rows in board["datasets"].values())
    page = board_html(client)
    assert "Cheaters" not in page and "3.0000" not in page


def test_dataset_sections_follow_the_ntire_order(client, make_team, make_scored):
    scrambled = ["Wider-Test", "Extra-Set", "CelebA", "WebPhoto-Test", "LFW-Test", "CelebChild-Test"]
    make_scored(make_team("Alpha"), 0.4, datasets=scrambled, at=at(1))
    make_scored(make_team("Bravo"), 0.8, datasets=scrambled[::-1], at=at(2))
    make_scored(make_team("Charlie"), 0.6, datasets=["LFW-Test"], at=at(3))
    board = board_json(client)
    assert list(board["datasets"]) == [*NTIRE_DATASETS, "Extra-Set"]
    for name, rows in board["datasets"].items():
        expected = ["Bravo", "Charlie", "Alpha"] if name == "LFW-Test" else ["Bravo", "Alpha"]
        assert [r["team"] for r in rows] == expected, name
        assert all(r["image_count"] == 1 for r in rows)
    page = board_html(client)
    assert re.findall(r'<h2 id="dataset-([^"]+)"', page) == [*NTIRE_DATASETS, "Extra-Set"]


@pytest.mark.parametrize("visibility", [Phase.Visibility.HIDDEN, Phase.Visibility.TEAM])
def test_unpublished_scores_are_shown_to_organizers_only(client, phase, visibility, organizer, make_team,
                                                         make_scored, django_user_model):
    phase.visibility = visibility
    phase.save()
    alpha = make_team("Alpha", members=["alpha2"])
    make_scored(alpha, 0.777777, datasets=["CelebA", "LFW-Test"])
    make_scored(make_team("Bravo"), 0.654321)
    participant = django_user_model.objects.get(username="alpha2")
    tokens = {user.username: ApiToken.objects.create(user=user).key for user in (participant, organizer)}

    def views(as_user=None, token=None) -> list[tuple[str, str]]:
        client.logout()
        if as_user:
            client.force_login(as_user)
        api = client.get(reverse("api-leaderboard", args=[phase.pk]),
                         **({"HTTP_AUTHORIZATION": f"Token {token}"} if token else {})).content.decode()
        if token:  # the token counts for the API only
            return [("api", api)]
        return [
            ("html", client.get(reverse("leaderboard", args=["ntire", "dev"])).content.decode()),
            ("json", client.get(reverse("leaderboard-json", args=["ntire", "dev"])).content.decode()),
            ("api", api),
        ]

    for who, responses in (("anonymous", views()), ("participant", views(participant)),
                           ("participant token", views(token=tokens["alpha2"]))):
        for kind, body in responses:
            assert "Alpha" not in body and "Bravo" not in body, (who, kind)
            assert "0.7778" not in body and "0.777777" not in body and "0.654321" not in body, (who, kind)
            if kind != "html":
                data = json.loads(body)
                assert (data["visible"], data["rows"], data["datasets"]) == (False, [], {}), (who, kind)
        notice = ("hidden until the organizers publish" if visibility == Phase.Visibility.HIDDEN
                  else "shown to each team on its own submission pages only")
        assert all(notice in body for _, body in responses), who

    for who, responses in (("organizer", views(organizer)), ("organizer token", views(token=tokens["orga"]))):
        for kind, body in responses:
            assert "Alpha" in body and "Bravo" in body, (who, kind)
            assert "Organizer preview" in body, (who, kind)

    if visibility == Phase.Visibility.HIDDEN:
        phase.published = True
        phase.save()
        for kind, body in views():
            assert "Alpha" in body and "Organizer preview" not in body, kind
        assert [r.team for r in phase_leaderboard(phase).rows] == ["Alpha", "Bravo"]


@pytest.mark.parametrize("viewer", ["anonymous", "organizer"])
def test_query_count_does_not_grow_with_the_number_of_teams(client, viewer, organizer, make_team, make_scored):
    if viewer == "organizer":
        client.force_login(organizer)

    def add_teams(start: int, stop: int) -> None:
        for i in range(start, stop):
            team = make_team(f"Team {i:03d}")
            make_scored(team, 0.1 + i / 100, failed=20 if i % 7 == 0 else 0, datasets=["CelebA", "LFW-Test"],
                        at=at(i))
            make_scored(team, 0.05 + i / 100, datasets=["CelebA", "LFW-Test"], at=at(100 + i))

    def count(url: str, teams: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        if url.endswith(".json"):
            assert len(response.json()["rows"]) == teams
        else:
            assert len(html_teams(response.content.decode())) == teams
        return len(queries)

    urls = [reverse("leaderboard-json", args=["ntire", "dev"]), reverse("leaderboard", args=["ntire", "dev"])]
    add_teams(0, 5)
    few = [count(url, 5) for url in urls]
    add_teams(5, 50)
    many = [count(url, 50) for url in urls]
    assert many == few
    assert max(few) <= 10
