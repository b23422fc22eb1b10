"""The spine, end to end with real processes: upload -> Celery worker -> leaderboard.

Once on PostgreSQL + Redis, once on the embedded default (SQLite + sqla broker + local files).
"""

import pytest

from tests.support.archives import zip_folder
from tests.support.env import subset_of_validation
from tests.support.stack import LiveStack, WebUser

pytestmark = pytest.mark.slow

DATASETS = {"CelebA", "CelebChild-Test", "LFW-Test", "WebPhoto-Test", "Wider-Test"}


@pytest.fixture(params=["services", "embedded"])
def stack(request, tmp_path, weights_dir):
    live = LiveStack(request.param, tmp_path / request.param, weights_dir)
    yield live
    live.close()


def test_uploaded_archive_is_scored_by_worker_and_ranked(stack, tmp_path):
    inputs, landmarks = subset_of_validation(tmp_path, per_dataset=1)
    stack.manage("migrate", "--noinput")
    stack.manage("create_phase", "--challenge", "ntire", "--title", "NTIRE e2e", "--phase", "dev",
                 "--profile", "ntire2025-dev", "--inputs", str(inputs), "--landmarks", str(landmarks))
    stack.start_worker()
    stack.start_web()

    alice = WebUser(stack.url)
    alice.sign_up("alice")
    alice.create_team("ntire", "Team Alice")
    archive = zip_folder(inputs, tmp_path / "restored.zip")  # "restored" = the inputs themselves
    submission = alice.submission_id(alice.upload("ntire", "dev", archive))

    status = alice.wait_final(submission)
    assert status["state"] == "scored", (status, stack.log("worker")[-4000:])
    states = [event["state"] for event in status["log"]]
    assert states[-3:] == ["validating", "scoring", "scored"]
    result = status["result"]
    assert set(result["datasets"]) == DATASETS
    assert set(result["metrics"]) == {"clipiqa", "musiq"}
    # The restored images are the inputs: identity similarity is that of an image with itself.
    assert result["id_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert result["failed_images"] == 0 and result["id_valid"] is True
    assert result["official_weights"] is False  # test weights, and the page must say so

    board = alice.leaderboard("ntire", "dev")
    assert board["visible"] is True
    [row] = board["rows"]
    assert (row["rank"], row["team"], row["submission"]) == (1, "Team Alice", submission)
    assert row["total"] == pytest.approx(result["total"])
    assert row["total"] == pytest.approx(result["metrics"]["clipiqa"] + result["metrics"]["musiq"] / 100)
    assert set(board["datasets"]) == DATASETS
    for name, rows in board["datasets"].items():
        assert [r["team"] for r in rows] == ["Team Alice"], name
        assert rows[0]["image_count"] == 1
        assert rows[0]["metrics"]["musiq"] == pytest.approx(result["datasets"][name]["metrics"]["musiq"])
    page = alice.http.get(f"{stack.url}/c/ntire/p/dev/leaderboard/", timeout=30).text
    assert "Team Alice" in page and "not the official ones" in page
