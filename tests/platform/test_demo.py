"""``./dev demo`` (``manage.py demo``), the README's first command, as a user runs it: a separate process on
the embedded default (SQLite, local files, a real Celery worker on the SQLAlchemy broker) that seeds the
challenge, scores its sample, serves it, and stops its web server and worker when it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from tests.support.env import ROOT
from tests.support.stack import free_port, stop_process_group, wait_until

pytestmark = pytest.mark.slow


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_demo_seeds_scores_serves_and_stops_cleanly(tmp_path, weights_dir):
    port = free_port()
    # As on a fresh machine: no database, broker or weights configured (the demo uses the test weights'
    # default folder, which the weights_dir fixture has generated).
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "FR_WEIGHTS_DIR")}
    env.update(FR_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        demo = subprocess.Popen([sys.executable, "manage.py", "demo", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def serving() -> bool:
            if demo.poll() is not None:  # pytest.fail is not an Exception: wait_until does not swallow it
                pytest.fail(f"the demo exited with {demo.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            return "Demo running" in log.read_text(errors="replace")

        wait_until(serving, 240, "the demo to seed, score its sample and start serving")
        text = log.read_text(errors="replace")
        assert f"model weights: {weights_dir}" in text
        assert "sample submission" in text and ": scored" in text, text[-3000:]
        assert "ntire2025-dev" in text and "ntire2026-no-qalign" in text  # both editions' profiles
        assert f"http://127.0.0.1:{port}/organize/c/ntire2025-demo/ -> 'New edition'" in text
        base = f"http://127.0.0.1:{port}"
        page = wait_until(lambda: requests.get(f"{base}/c/ntire2025-demo/p/development/leaderboard/", timeout=10),
                          60, "the demo's web server")
        assert page.status_code == 200 and 'data-team="Unsharp-mask baseline"' in page.text
        board = requests.get(f"{base}/c/ntire2025-demo/p/development/leaderboard.json", timeout=10).json()
        assert sorted(row["team"] for row in board["rows"]) == ["Inputs as they are", "Unsharp-mask baseline"]
        assert 'id="tab-rank-stability"' in page.text
        tab = requests.get(f"{base}/c/ntire2025-demo/p/development/leaderboard/rank-stability/", timeout=10)
        assert tab.status_code == 200 and 'id="chart-rank-blobs"' in tab.text and 'id="chart-significance"' in tab.text
        stability = requests.get(f"{base}/c/ntire2025-demo/p/development/rank-stability.json", timeout=10).json()
        assert stability["current"] is True and stability["analysis"]["resamples"] == 1000
        assert sorted(t["team"] for t in stability["analysis"]["teams"]) == sorted(r["team"] for r in board["rows"])
        assert board["official_weights"] is False  # test weights: the page says so
        assert "not the official ones" in page.text

        challenge = requests.get(f"{base}/c/ntire2025-demo/", timeout=10).text
        assert all(f'data-page="{slug}"' in challenge for slug in ("overview", "evaluation", "data", "terms"))
        evaluation = requests.get(f"{base}/c/ntire2025-demo/pages/evaluation/", timeout=10).text
        assert 'id="generated-evaluation"' in evaluation and "total = CLIPIQA + MUSIQ/100" in evaluation
        assert "printed on this console" in text

        demo.send_signal(signal.SIGTERM)  # a plain `kill`: the web server and the worker go too
        assert demo.wait(timeout=40) is not None
        wait_until(lambda: not group_alive(demo.pid), 30, "the demo's web server and worker to stop")
    finally:
        if group_alive(demo.pid):
            stop_process_group(demo)
