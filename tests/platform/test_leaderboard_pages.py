"""The leaderboard page in pages of ROWS_PER_PAGE teams, its charts' data, and the JSON export's
compression and entity tag (leaderboard/views.py)."""

from __future__ import annotations

import gzip
import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from leaderboard import cache as board_cache
from leaderboard import selectors
from tests.platform.conftest import NTIRE_DATASETS

T0 = timezone.now() - timedelta(days=2)
TEAMS, PER_PAGE = 23, 10


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    monkeypatch.setattr(selectors, "ROWS_PER_PAGE", PER_PAGE)
    board_cache.clear_cache()
    cache.clear()
    yield
    board_cache.clear_cache()


@pytest.fixture
def teams(make_team, make_scored):
    """23 teams, Team 00 best; Team 21 and 22 over the identity-failure limit (unranked, listed last)."""
    made = []
    for i in range(TEAMS):
        team = make_team(f"Team {i:02d}")
        make_scored(team, 1.0 - i / 100, failed=30 if i >= 21 else 0, datasets=NTIRE_DATASETS,
                    at=T0 + timedelta(minutes=i))
        made.append(team)
    return made


def page(client, number: str | int | None = None) -> str:
    url = reverse("leaderboard", args=["ntire", "dev"]) + (f"?page={number}" if number is not None else "")
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def main_rows(body: str) -> list[tuple[str, str]]:
    table = body.split('id="leaderboard"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr [^>]*data-team="([^"]+)">\s*<td>([^<]*)</td>', table)


def dataset_teams(body: str, dataset: str) -> list[str]:
    table = body.split(f'data-dataset="{dataset}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr><td>([^<]+)</td>", table)


def test_the_board_is_shown_in_pages_with_their_per_dataset_rows(client, teams):
    first = page(client)
    assert main_rows(first) == [(f"Team {i:02d}", str(i + 1)) for i in range(10)]
    assert "Teams 1–10 of 23." in first
    for dataset in NTIRE_DATASETS:  # the breakdown shows the same teams, in the same order
        assert dataset_teams(first, dataset) == [f"Team {i:02d}" for i in range(10)]
    assert re.findall(r'href="\?page=(\d+)"', first.split('class="pages"', 1)[1].split("</nav>")[0]) == ["2", "3", "2"]

    last = page(client, 3)
    assert main_rows(last) == [("Team 20", "21"), ("Team 21", "—"), ("Team 22", "—")]
    assert "Teams 21–23 of 23." in last
    assert dataset_teams(last, "LFW-Test") == ["Team 20", "Team 21", "Team 22"]
    assert 'rel="prev"' in last and 'rel="next"' not in last

    assert main_rows(page(client, 99)) == main_rows(last)  # past the end: the last page
    assert main_rows(page(client, "x")) == main_rows(first)  # not a number: the first
    assert main_rows(page(client, -4)) == main_rows(first)

    whole = client.get(reverse("leaderboard-json", args=["ntire", "dev"])).json()  # the export has every row
    assert [row["team"] for row in whole["rows"]] == [f"Team {i:02d}" for i in range(TEAMS)]
    assert all(len(rows) == TEAMS for rows in whole["datasets"].values())


def test_a_member_is_told_the_rank_and_page_of_their_team(client, teams, make_team, make_scored, make_user):
    client.force_login(teams[14].created_by)
    body = page(client)
    assert re.search(r'Your team <strong>Team 14</strong> is ranked <strong>15</strong>: <a href="\?page=2#team-'
                     + str(teams[14].pk) + '">page 2</a>', body)
    assert f'id="team-{teams[14].pk}"' in page(client, 2)

    client.force_login(teams[22].created_by)
    assert "Your team <strong>Team 22</strong> is listed unranked" in page(client)

    newcomer = make_team("Newcomer")
    client.force_login(newcomer.created_by)
    assert "Newcomer</strong> has no scored submission on this board yet" in page(client)
    client.force_login(make_user("no-team"))
    assert 'id="your-place"' not in page(client)


def test_the_charts_of_a_page_show_the_teams_of_that_page(client, teams):
    body = page(client, 2)
    urls = set(re.findall(r'data-url="([^"]+)"', body))
    assert urls == {reverse("leaderboard-charts", args=["ntire", "dev"]) + "?page=2"}
    figures = client.get(urls.pop()).json()["figures"]
    scatter_teams = [name for trace in figures["scatter"]["data"] for name in trace["text"]]
    assert scatter_teams == [f"Team {i:02d}" for i in range(10, 20)]
    assert [trace["name"] for trace in figures["datasets-total"]["data"]] == [f"Team {i:02d}" for i in range(10, 20)]
    assert figures["datasets-total"]["data"][0]["x"] == NTIRE_DATASETS


def test_the_json_export_is_gzipped_once_and_answers_304_while_unchanged(client, teams, make_scored):
    url = reverse("leaderboard-json", args=["ntire", "dev"])
    plain = client.get(url)
    zipped = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert "Content-Encoding" not in plain and zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) * 4 < len(plain.content)
    assert "Accept-Encoding" in zipped["Vary"]
    etag = plain["ETag"]
    assert etag == zipped["ETag"] and etag.startswith('W/"')

    again = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""

    make_scored(teams[5], 2.0, datasets=NTIRE_DATASETS)  # a new best result: a new body and tag
    changed = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert json.loads(changed.content)["rows"][0]["team"] == "Team 05"

    api = client.get(reverse("api-leaderboard", args=[teams[0].challenge.phases.get().pk]),
                     HTTP_ACCEPT_ENCODING="gzip")
    assert api["Content-Encoding"] == "gzip" and gzip.decompress(api.content) == changed.content


def test_a_board_built_for_one_request_is_sent_plainly(client, settings, teams):
    """With the cache off (or an organizer's preview) gzip and the tag would be computed for every request."""
    settings.FR_LEADERBOARD_CACHE_SECONDS = 0
    response = client.get(reverse("leaderboard-json", args=["ntire", "dev"]), HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and "Content-Encoding" not in response and "ETag" not in response
    assert len(response.json()["rows"]) == TEAMS


def message_cookie(text: str) -> str:
    """The ``messages`` cookie Django's cookie message storage writes for one message."""
    from django.contrib.messages import constants
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.http import HttpResponse
    from django.test import RequestFactory

    storage = CookieStorage(RequestFactory().get("/"))
    storage.add(constants.SUCCESS, text)
    response = HttpResponse()
    storage.update(response)
    return response.cookies["messages"].value


def test_visitors_without_a_session_share_one_rendered_page_and_others_get_their_own(client, teams, phase):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = page(client)
    with CaptureQueriesContext(connection) as queries:
        again = page(client)
    assert again == first
    assert len(queries) == 1  # the phase with its board counter; nothing else

    phase.name = "Development, renamed"  # the shell's text is part of what the kept page is kept for
    phase.save()
    assert "Leaderboard: Development, renamed" in page(client)

    client.cookies["messages"] = message_cookie("Phase saved.")  # a message waiting for this visitor
    assert "Phase saved." in page(client)
    assert "Phase saved." not in page(client)  # shown once, then the shared page again
    client.force_login(teams[3].created_by)
    assert "Your team <strong>Team 03</strong> is ranked <strong>4</strong>" in page(client)
    client.logout()
    assert 'id="your-place"' not in page(client)
