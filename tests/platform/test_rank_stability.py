"""The rank-stability analysis on the platform: stored features, the debounced task on the default queue, the
board version an analysis belongs to, the same analysis on PostgreSQL and SQLite, the tab, JSON, CSV and API,
and who may see them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from django.urls import reverse

from competitions.models import Phase
from leaderboard.models import RankStability
from leaderboard.selectors import rank_stability_view
from leaderboard.services import compute_rank_stability
from submissions.models import FidFeatures, Submission, SubmissionResult
from tests.support import rank_board
from tests.support.env import ROOT

TASK = "leaderboard.tasks.rank_stability"


@pytest.fixture(scope="module")
def reference(weights_dir):
    return rank_board.reference_of(weights_dir)


@pytest.fixture
def board(db, scoring_settings, reference, organizer) -> Phase:
    return rank_board.seed_board(reference, organizer=organizer)


@pytest.fixture
def default_queue():
    """The task messages waiting in the broker's ``default`` queue (drained before and after the test)."""
    from frplatform.celery import app

    def drain(phase_id: int | None = None) -> list[tuple[str, list, dict, dict]]:
        found = []
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            channel.queue_declare(queue="default", durable=True, auto_delete=False, passive=False)
            while (message := channel.basic_get("default", no_ack=True)) is not None:
                args, kwargs, _embed = message.decode()
                if message.headers.get("task") == TASK and (phase_id is None or args[:1] == [phase_id]):
                    found.append((message.headers["task"], list(args), kwargs, message.headers))
        return found

    drain()
    yield drain
    drain()


def analysis(phase: Phase) -> dict:
    return RankStability.objects.filter(phase=phase).latest("created_at").data


def test_the_worker_stores_the_features_it_computed_fid_from(board):
    stored = FidFeatures.objects.filter(result__submission__phase=board).order_by("pk")
    assert stored.count() == 3
    first = stored.first()
    array = first.array()
    assert array.dtype == np.float32 and array.shape == (sum(rank_board.LAYOUT.values()), 2048)
    assert len(first.images) == array.shape[0] and first.images[0] == "CelebA/cel_000.png"
    assert len(bytes(first.data)) == array.shape[0] * 2048 * 4  # float32: 8 KiB per image


def test_identity_resample_gives_the_boards_totals_to_1e_9_fid_included(board):
    assert compute_rank_stability(board.pk, resamples=30, seed=1) == "stored"
    data = analysis(board)
    assert data["fid"] == "bootstrapped" and data["fid_held_fixed"] == []
    totals = dict(SubmissionResult.objects.filter(submission__phase=board)
                  .values_list("submission__team__name", "total"))
    assert len(data["teams"]) == 3
    for team in data["teams"]:
        assert abs(team["board_total"] - totals[team["team"]]) <= 1e-9, team["team"]
    assert [t["board_rank"] for t in data["teams"]] == [1, 2, 3]


def test_same_seed_gives_the_same_analysis_twice_and_on_sqlite(board, tmp_path, weights_dir):
    assert compute_rank_stability(board.pk, resamples=rank_board.RESAMPLES, seed=rank_board.SEED) == "stored"
    first = analysis(board)
    RankStability.objects.all().delete()
    assert compute_rank_stability(board.pk, resamples=rank_board.RESAMPLES, seed=rank_board.SEED) == "stored"
    assert analysis(board) == first
    # The same board on the other engine the platform runs on, in a process of its own.
    env = {**os.environ, "FR_VAR_DIR": str(tmp_path / "var")}
    out = subprocess.run([sys.executable, "-m", "tests.support.rank_board", f"sqlite:///{tmp_path / 'db.sqlite3'}",
                          str(weights_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(first))
    assert first["resamples"] == rank_board.RESAMPLES and first["seed"] == rank_board.SEED


def test_an_analysis_is_shown_only_for_the_board_it_was_computed_from(board, make_scored, client, organizer):
    assert compute_rank_stability(board.pk, resamples=20, seed=3) == "stored"
    assert compute_rank_stability(board.pk, resamples=20, seed=3) == "current"  # nothing changed: nothing to do
    view = rank_stability_view(Phase.objects.get(pk=board.pk))
    assert view.analysis is not None and not view.stale
    url = reverse("rank-stability-json", args=["rank", "test"])
    assert client.get(url).json()["current"] is True

    from teams.models import Team

    newcomer = Team.objects.create(challenge=board.challenge, name="Newcomer", created_by=organizer)
    make_scored(newcomer, 9.0, for_phase=board)  # the board changes: its old analysis is history
    view = rank_stability_view(Phase.objects.get(pk=board.pk))
    assert view.analysis is None and view.stale
    body = client.get(url).json()
    assert body["current"] is False and "analysis" not in body and body["status"].startswith("being computed")
    page = client.get(reverse("rank-stability", args=["rank", "test"])).content.decode()
    assert 'id="stability-pending"' in page and "has changed since its last analysis" in page
    assert "stability-figures" not in page
    assert client.get(reverse("rank-stability-csv", args=["rank", "test"])).status_code == 404


def test_a_board_change_schedules_one_debounced_task_on_the_default_queue(board, default_queue, make_scored,
                                                                          django_capture_on_commit_callbacks,
                                                                          settings):
    settings.FR_RANK_STABILITY_DEBOUNCE = 45
    default_queue()
    team = board.challenge.teams.first()
    with django_capture_on_commit_callbacks(execute=True):
        make_scored(team, 1.0, for_phase=board)
    with django_capture_on_commit_callbacks(execute=True):
        make_scored(team, 2.0, for_phase=board)  # within the window: the waiting task will read this board too
    sent = default_queue(board.pk)
    assert len(sent) == 1
    task, args, kwargs, headers = sent[0]
    assert args == [board.pk] and headers.get("eta")  # sent with a countdown
    # The task runs the service: the board as it is when it runs, stored with that version.
    from leaderboard.tasks import rank_stability

    assert rank_stability.run(board.pk, resamples=15, seed=0) == "stored"
    assert rank_stability.run(board.pk, resamples=15, seed=0) == "current"
    with django_capture_on_commit_callbacks(execute=True):
        make_scored(team, 3.0, for_phase=board)  # after the task started: a task of its own
    assert len(default_queue(board.pk)) == 1


def test_the_organizer_asks_for_an_analysis_with_other_draws(board, client, organizer, default_queue, make_user):
    url = reverse("organizers:rank-stability", args=["rank", "test"])
    client.force_login(make_user("someone"))
    assert client.post(url, {"resamples": "200", "seed": "9"}).status_code == 403
    assert default_queue(board.pk) == []
    client.force_login(organizer)
    response = client.post(url, {"resamples": "200", "seed": "9"})
    assert response.status_code == 302 and response["Location"].endswith("/leaderboard/rank-stability/")
    (sent,) = default_queue(board.pk)
    assert sent[2] == {"resamples": 200, "seed": 9, "user_id": organizer.pk}
    assert compute_rank_stability(board.pk, user_id=organizer.pk, **{k: sent[2][k] for k in ("resamples", "seed")}) \
        == "stored"
    stored = RankStability.objects.get(phase=board)
    assert (stored.resamples, stored.seed, stored.requested_by_id) == (200, 9, organizer.pk)
    page = client.get(reverse("organizers:phase", args=["rank", "test"])).content.decode()
    assert 'id="stability-places"' in page and "Not significantly behind" in page


def test_the_tab_json_csv_and_api_show_the_current_analysis(board, client):
    assert compute_rank_stability(board.pk, resamples=40, seed=5) == "stored"
    data = analysis(board)
    page = client.get(reverse("rank-stability", args=["rank", "test"])).content.decode()
    assert 'id="chart-rank-blobs"' in page and 'id="chart-significance"' in page
    assert 'id="stability-figures" type="application/json"' in page
    assert page.count('<tr data-team="') == 3 and "40 resamples, seed 5" in page
    assert 'id="tab-rank-stability"' in client.get(reverse("leaderboard", args=["rank", "test"])).content.decode()
    body = client.get(reverse("rank-stability-json", args=["rank", "test"])).json()
    assert body["analysis"] == data and body["current"] is True
    assert client.get(reverse("api-rank-stability", args=[board.pk])).json()["analysis"] == data
    csv_text = client.get(reverse("rank-stability-csv", args=["rank", "test"])).content.decode()
    assert csv_text.splitlines()[0].startswith("board_rank,team,board_total")
    assert [line.split(",")[1] for line in csv_text.splitlines()[1:]] == [t["team"] for t in data["teams"]]


def test_a_hidden_phase_shows_its_analysis_to_nobody_but_organizers_until_published(board, client, organizer,
                                                                                    make_user):
    from leaderboard.charts import stability_charts

    board.visibility, board.published = Phase.Visibility.HIDDEN, False
    board.save()
    assert compute_rank_stability(board.pk, resamples=25, seed=2) == "stored"
    data = analysis(board)
    assert stability_charts(data) is not None
    markers = ("rank_counts", "board_total", "stability-figures", "stability-table", "Kendall", "p_holm")
    urls = {"tab": reverse("rank-stability", args=["rank", "test"]),
            "json": reverse("rank-stability-json", args=["rank", "test"]),
            "api": reverse("api-rank-stability", args=[board.pk]),
            "csv": reverse("rank-stability-csv", args=["rank", "test"]),
            "organizer page": reverse("organizers:phase", args=["rank", "test"])}
    member = Submission.objects.filter(phase=board).first().team.created_by
    for who, user in (("anonymous", None), ("outsider", make_user("outsider")), ("team member", member)):
        client.logout()
        if user is not None:
            client.force_login(user)
        for name, url in urls.items():
            response = client.get(url)
            body = response.content.decode()
            assert not any(marker in body for marker in markers), (who, name)
            expected = {"csv": 404, "organizer page": 403}.get(name, 200)
            assert response.status_code == expected, (who, name, response.status_code)
        assert client.get(urls["json"]).json() == {"challenge": "rank", "phase": "test", "visible": False,
                                                  "notice": client.get(urls["json"]).json()["notice"],
                                                  "current": False}
    client.force_login(organizer)
    assert client.get(urls["json"]).json()["analysis"] == data
    assert "stability-figures" in client.get(urls["tab"]).content.decode()
    assert client.get(urls["csv"]).status_code == 200

    board.published = True
    board.save()  # publishing changes the board's version: the analysis is recomputed for it
    assert compute_rank_stability(board.pk, resamples=25, seed=2) == "stored"
    client.logout()
    assert client.get(urls["json"]).json()["analysis"]["teams"] == data["teams"]
    assert client.get(urls["csv"]).status_code == 200


def test_a_board_without_ranked_teams_has_nothing_to_analyse(phase, make_team, make_scored, client):
    make_scored(make_team("Too many failures"), 0.7, failed=11)  # listed on the board, unranked
    assert compute_rank_stability(phase.pk) == "no ranked team"
    body = client.get(reverse("rank-stability-json", args=["ntire", phase.slug])).json()
    assert body["current"] is False and body["status"] == "no ranked team"
    page = client.get(reverse("rank-stability", args=["ntire", phase.slug])).content.decode()
    assert "No ranked team yet." in page and 'id="stability-pending"' not in page
    assert not RankStability.objects.exists()
