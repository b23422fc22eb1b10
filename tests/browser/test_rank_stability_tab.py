"""The "Rank stability" tab in Chromium, on a live embedded stack (SQLite, sqla broker, a real Celery worker on the
default queue, gunicorn): a board is stored through the worker's ``store_result``, its change schedules the
analysis, the worker computes it, and the tab draws the blob plot and the significance map with plotly.js.
Screenshots land in test-artifacts/browser/."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.stack import LiveStack, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SEED = """
from pathlib import Path
from django.conf import settings
from tests.support.rank_board import reference_of, seed_board
print("phase", seed_board(reference_of(Path(settings.FR_WEIGHTS_DIR))).pk)
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory, weights_dir):
    root = tmp_path_factory.mktemp("stability-stack")
    stack = LiveStack("embedded", root / "stack", weights_dir, extra_env={"FR_RANK_STABILITY_DEBOUNCE": "1"})
    try:
        stack.manage("migrate", "--noinput")
        stack.start_worker(queues="default")
        stack.start_web()
        yield stack
    finally:
        if "worker" in stack.processes:
            stack.kill("worker")
        stack.close()


def test_the_tab_draws_the_blob_plot_and_the_significance_map(live, page: Page, screenshots):
    assert "phase" in live.shell(SEED)
    json_url = f"{live.url}/c/rank/p/test/rank-stability.json"

    def computed() -> bool:
        return requests.get(json_url, timeout=10).json()["current"]

    # Nobody asked for it: the board's change scheduled the task, and the worker on the default queue ran it.
    wait_until(computed, 180, f"the worker's analysis (log: {live.logs / 'worker.log'})")
    assert "leaderboard.tasks.rank_stability" in live.log("worker")
    with screenshots("rank-stability") as shot:
        page.goto(f"{live.url}/c/rank/p/test/leaderboard/")
        page.click("#tab-rank-stability")
        expect(page.locator("#board-tabs a.active")).to_have_text("Rank stability")
        blobs, heatmap = page.locator("#chart-rank-blobs"), page.locator("#chart-significance")
        expect(blobs.locator(".main-svg").first).to_be_visible()
        expect(heatmap.locator(".main-svg").first).to_be_visible()
        # A disc per (team, rank) seen, and the heatmap's cells: the figures carry data, not just axes.
        assert blobs.locator(".scatterlayer .point").count() >= 3
        assert heatmap.locator(".heatmaplayer image, .heatmaplayer .hm").count() >= 1
        expect(page.locator("#stability-table tbody tr")).to_have_count(3)
        expect(page.locator("#stability-summary")).to_contain_text("1000 resamples")
        shot("tab")
        assert not page.http_errors and not page.js_errors, (page.http_errors, page.js_errors)
