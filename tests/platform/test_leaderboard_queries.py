"""The leaderboard's SQL: a fixed number of queries whatever the number of teams, and its cache.

Each view is read right after the data changed (the board is built: the cache misses) and
then again (the cache hits); both counts must be the same with 5 teams as with 60.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from competitions.models import Phase
from leaderboard import cache as board_cache
from leaderboard import formatting, phase_lookup
from submissions.models import Submission
from tests.platform.conftest import NTIRE_DATASETS

T0 = timezone.now() - timedelta(days=3)
FEW, MANY = 5, 60


@pytest.fixture(autouse=True)
def empty_caches():
    board_cache.clear_cache()
    cache.clear()
    yield
    board_cache.clear_cache()
    cache.clear()


def urls(phase: Phase) -> dict[str, str]:
    return {
        "html": reverse("leaderboard", args=[phase.challenge.slug, phase.slug]),
        "json": reverse("leaderboard-json", args=[phase.challenge.slug, phase.slug]),
        "api": reverse("api-leaderboard", args=[phase.pk]),
    }


def read(client, url: str) -> tuple[int, str]:
    """(number of SQL queries, body) of one GET."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(queries), response.content.decode()


def row_count(kind: str, body: str) -> int:
    if kind == "html":
        table = body.split('id="leaderboard"', 1)[1].split("</table>", 1)[0]
        return table.count("data-team=")
    import json

    return len(json.loads(body)["rows"])


def add_teams(make_team, make_scored, start: int, stop: int, *, selected: bool = False) -> None:
    """Teams with three submissions each over the five NTIRE datasets: a valid one, one over the
    identity-failure limit, and one that is not scored (it must not count, nor cost a query)."""
    for i in range(start, stop):
        team = make_team(f"Team {i:03d}")
        make_scored(team, 0.2 + i / 100, datasets=NTIRE_DATASETS, at=T0 + timedelta(minutes=i), selected=selected)
        make_scored(team, 0.9 + i / 100, failed=30, datasets=NTIRE_DATASETS, at=T0 + timedelta(minutes=200 + i))
        make_scored(team, 5.0, state=Submission.State.FAILED, with_result=False)


def counts(client, phase: Phase, teams: int) -> dict[str, tuple[int, int]]:
    """Per view: (queries when the board was just changed, queries when read again)."""
    found = {}
    for kind, url in urls(phase).items():
        board_cache.clear_cache()
        cache.clear()
        miss, body = read(client, url)
        assert row_count(kind, body) == teams, kind
        hit, again = read(client, url)
        # (The page header's logout form has a fresh CSRF mask on every response.)
        assert again.split("</header>")[-1] == body.split("</header>")[-1], f"{kind}: a cached read differs"
        found[kind] = (miss, hit)
    return found


@pytest.mark.parametrize("selection", [Phase.Selection.BEST, Phase.Selection.LATEST, Phase.Selection.SELECTED])
@pytest.mark.parametrize("viewer", ["anonymous", "participant", "organizer"])
def test_query_counts_are_the_same_for_5_and_60_teams(client, phase, organizer, make_user, make_team, make_scored,
                                                      selection, viewer):
    phase.selection = selection
    phase.save()
    if viewer == "organizer":
        client.force_login(organizer)
    elif viewer == "participant":
        client.force_login(make_user("someone"))
    selected = selection == Phase.Selection.SELECTED

    add_teams(make_team, make_scored, 0, FEW, selected=selected)
    few = counts(client, phase, FEW)
    add_teams(make_team, make_scored, FEW, MANY, selected=selected)
    many = counts(client, phase, MANY)

    assert many == few
    for kind, (miss, hit) in few.items():
        assert miss <= 12, (kind, miss)
        assert hit <= miss, (kind, hit, miss)


def test_organizer_preview_is_built_for_each_read_in_a_fixed_number_of_queries(client, phase, organizer, make_team,
                                                                                make_scored):
    phase.visibility = Phase.Visibility.HIDDEN
    phase.save()
    client.force_login(organizer)
    add_teams(make_team, make_scored, 0, FEW)
    few = counts(client, phase, FEW)
    add_teams(make_team, make_scored, FEW, MANY)
    assert counts(client, phase, MANY) == few
    assert all(miss == hit for miss, hit in few.values())  # never cached: previews are not public


def test_a_cached_board_costs_fewer_queries_than_building_it(client, phase, make_team, make_scored):
    add_teams(make_team, make_scored, 0, FEW)
    for kind, (miss, hit) in counts(client, phase, FEW).items():
        assert hit < miss, (kind, miss, hit)


def test_the_cache_can_be_turned_off(client, settings, phase, make_team, make_scored):
    settings.FR_LEADERBOARD_CACHE_SECONDS = 0
    add_teams(make_team, make_scored, 0, FEW)
    for kind, (miss, hit) in counts(client, phase, FEW).items():
        assert hit == miss, kind


def teams_in(client, phase: Phase) -> list[tuple[int | None, str, float]]:
    import json

    body = read(client, urls(phase)["json"])[1]
    return [(row["rank"], row["team"], round(row["total"], 6)) for row in json.loads(body)["rows"]]


def html_teams(client, phase: Phase) -> list[str]:
    import re

    body = read(client, urls(phase)["html"])[1]
    table = body.split('id="leaderboard"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-team="([^"]+)"', table)


def test_every_change_the_board_shows_is_seen_at_once(client, phase, make_team, make_scored):
    """A cached board must never hide a new result, a re-run, a disqualification or a new selection."""
    from submissions.services import rerun_submission, select_submission

    alpha, bravo = make_team("Alpha"), make_team("Bravo")
    make_scored(alpha, 0.5, at=T0)
    bravo_first = make_scored(bravo, 0.4, at=T0 + timedelta(minutes=1))
    assert teams_in(client, phase) == [(1, "Alpha", 0.5), (2, "Bravo", 0.4)]
    assert html_teams(client, phase) == ["Alpha", "Bravo"]

    better = make_scored(bravo, 0.7, at=T0 + timedelta(minutes=2))  # a new result
    assert teams_in(client, phase) == [(1, "Bravo", 0.7), (2, "Alpha", 0.5)]
    assert html_teams(client, phase) == ["Bravo", "Alpha"]

    rerun_submission(better, "orga")  # the result is deleted: back to the older one
    assert teams_in(client, phase) == [(1, "Alpha", 0.5), (2, "Bravo", 0.4)]
    assert html_teams(client, phase) == ["Alpha", "Bravo"]

    alpha.disqualified = True
    alpha.save()
    assert teams_in(client, phase) == [(1, "Bravo", 0.4)]
    assert html_teams(client, phase) == ["Bravo"]

    phase.selection = Phase.Selection.SELECTED
    phase.save()
    make_scored(bravo, 0.9, at=T0 + timedelta(minutes=3), selected=True)
    assert teams_in(client, phase) == [(1, "Bravo", 0.9)]
    select_submission(bravo_first)  # the team picks its first submission instead
    assert teams_in(client, phase) == [(1, "Bravo", 0.4)]
    assert html_teams(client, phase) == ["Bravo"]

    phase.visibility = Phase.Visibility.HIDDEN  # not public any more: nothing from the cache
    phase.save()
    assert teams_in(client, phase) == []


def test_format4_writes_what_floatformat_4_writes():
    """The board's cells are written by format4: the same text as the template filter."""
    import random

    from django.template.defaultfilters import floatformat

    rng = random.Random(4)
    values = [rng.uniform(-200, 200) for _ in range(20000)] + [rng.random() * 10 ** rng.randint(-9, 9)
                                                                 for _ in range(5000)]
    values += [0.0, -0.0, -0.00004, 0.00005, 1.00005, 2.00015, -1.00005, 0.99995, 123456789.12345, 1e-300, 5e-05,
               float("nan"), float("inf"), float("-inf"), None, 3, -7, True, "0.5", "x"]
    for value in values:
        assert formatting.format4(value) == str(floatformat(value, 4)), value


def test_board_phase_reads_what_the_orm_reads_in_one_query(phase, make_team, make_scored):
    """The leaderboard's own phase query (written once, not built by the ORM per request)."""
    from django.forms.models import model_to_dict

    from leaderboard.versions import current_version

    phase.shown_metrics = ["musiq"]
    phase.closes_at = timezone.now() + timedelta(days=3)
    phase.save()
    make_scored(make_team("Alpha"), 0.5)
    orm = Phase.objects.select_related("challenge").get(pk=phase.pk)
    with CaptureQueriesContext(connection) as queries:
        by_slugs = phase_lookup.board_phase(challenge_slug="ntire", phase_slug="dev")
        by_id = phase_lookup.board_phase(phase_id=phase.pk)
        assert by_slugs.challenge.title == orm.challenge.title  # no query behind the relation
    assert len(queries) == 2
    for found in (by_slugs, by_id):
        assert model_to_dict(found) == model_to_dict(orm)
        assert [getattr(found, f.attname) for f in Phase._meta.concrete_fields] == \
            [getattr(orm, f.attname) for f in Phase._meta.concrete_fields]
        assert model_to_dict(found.challenge, exclude=["organizers"]) == \
            model_to_dict(orm.challenge, exclude=["organizers"])
        assert found.board_number == current_version(phase.pk) > 0
        assert found.scores_public == orm.scores_public
    assert phase_lookup.board_phase(challenge_slug="ntire", phase_slug="nope") is None
    assert phase_lookup.board_phase(phase_id=phase.pk + 1000) is None


def test_board_phase_reads_the_viewers_team_with_the_phase(phase, challenge, make_team, make_user):
    from competitions.services import create_challenge

    alpha = make_team("Alpha", members=["alpha2"])
    elsewhere = create_challenge(slug="other", title="Another challenge")
    outsider = make_user("outsider")
    make_team("Other Team", owner=outsider, in_challenge=elsewhere)  # a team, but of another challenge
    member = alpha.memberships.get(user__username="alpha2").user
    with CaptureQueriesContext(connection) as queries:
        seen_by_member = phase_lookup.board_phase(challenge_slug="ntire", phase_slug="dev", viewer_id=member.pk)
        seen_by_outsider = phase_lookup.board_phase(phase_id=phase.pk, viewer_id=outsider.pk)
        assert (seen_by_member.viewer_team.pk, seen_by_member.viewer_team.name) == (alpha.pk, "Alpha")
    assert len(queries) == 2
    assert seen_by_outsider.viewer_team is None
    assert seen_by_member.board_number == seen_by_outsider.board_number
    assert not hasattr(phase_lookup.board_phase(phase_id=phase.pk), "viewer_team")  # not asked: not read
