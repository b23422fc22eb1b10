"""An organizer in Chromium, on a live embedded stack (SQLite + local files, gunicorn, a Celery worker): log in,
create a challenge and a hidden test phase, try the input set without landmarks (a worker runs RetinaFace, whose test
weights find no face: the progress page lists the input and nothing is stored), upload it with the landmarks CSV,
and publish the phase's scores.

The organizer is made by ``manage.py createsuperuser --noinput``. Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.browser import ORGANIZER_PASSWORD, log_in_organizer
from tests.support.env import landmark_weights_dir, subset_of_validation
from tests.support.stack import LiveStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = ORGANIZER_PASSWORD
CHALLENGE, TITLE = "fr-final", "Face Restoration finals"
PHASE, PHASE_NAME = "test", "Final test"
DATASETS = {"CelebA", "CelebChild-Test", "LFW-Test", "WebPhoto-Test", "Wider-Test"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("organizer-stack")
    inputs, landmarks = subset_of_validation(root, per_dataset=1)
    stack = LiveStack("embedded", root / "stack", landmark_weights_dir(),
                      extra_env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD, "FR_PRELOAD_MODELS": "0"})
    try:
        stack.manage("migrate", "--noinput")
        stack.manage("createsuperuser", "--noinput", "--username", "boss", "--email", "boss@example.org")
        stack.start_worker(queues="default")  # RetinaFace for input sets without every landmark
        stack.start_web()
        stack.inputs, stack.landmarks = inputs, landmarks
        yield stack
    finally:
        stack.close()


def zip_inputs(folder: Path, target: Path, only: str | None = None) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for png in sorted(folder.glob("*/*.png")):
            if only is None or png.parent.name == only:
                archive.write(png, f"{png.parent.name}/{png.name}")
    return target


def assert_page_is_whole(page: Page) -> None:
    assert page.http_errors == [], page.http_errors
    assert page.js_errors == [], page.js_errors
    assert page.csp_violations == [], page.csp_violations


def test_organizer_creates_a_hidden_test_phase_loads_its_inputs_and_publishes(live, page, screenshots, tmp_path):
    base = live.url
    with screenshots("organizer") as shot:
        log_in_organizer(page, base)
        page.goto(f"{base}/organize/")
        shot("dashboard")

        page.click("#new-challenge")
        page.fill("#id_slug", CHALLENGE)
        page.fill("#id_title", TITLE)
        page.fill("#id_description", "Restore real-world faces.")
        page.fill("#id_max_team_size", "3")
        shot("challenge-form")
        page.click("#challenge-form button[type=submit]")
        expect(page).to_have_url(f"{base}/organize/c/{CHALLENGE}/")
        expect(page.locator("h1")).to_have_text(TITLE)
        expect(page.locator(".messages")).to_contain_text("Challenge Face Restoration finals created")
        shot("challenge")

        page.click("#new-phase")
        form = page.locator("#phase-form")
        page.fill("#id_slug", PHASE)
        page.fill("#id_name", PHASE_NAME)
        page.select_option("#id_kind", "test")
        page.fill("#id_opens_at", "2025-01-01T00:00")
        page.fill("#id_closes_at", "2099-12-31T23:59")
        page.fill("#id_max_per_day", "2")
        page.fill("#id_max_total", "5")
        page.fill("#id_max_running", "1")
        page.fill("#id_max_archive_mb", "300")
        page.select_option("#id_scoring_profile", "ntire2025-dev")
        form.locator("input[name=shown_metrics][value=clipiqa]").check()
        form.locator("input[name=shown_metrics][value=musiq]").check()
        page.select_option("#id_visibility", "hidden")
        page.select_option("#id_selection", "selected")
        shot("phase-form")
        form.locator("button[type=submit]").click()
        expect(page).to_have_url(f"{base}/organize/c/{CHALLENGE}/p/{PHASE}/")
        expect(page.locator("#published-state")).to_have_text("Not published")
        expect(page.locator("#input-set tbody")).to_contain_text("No input set yet")
        shot("phase-created")

        # Without a CSV a worker's RetinaFace looks for the faces; its test weights find none, so nothing is stored.
        # The upload leads to the job's progress page, which reloads itself until the job is over.
        one = zip_inputs(live.inputs, tmp_path / "celeba.zip", only="CelebA")
        upload = page.locator("#input-set-form")
        upload.locator("input[name=archive]").set_input_files(str(one))
        upload.locator("button[type=submit]").click()
        expect(page).to_have_url(re.compile(rf"{base}/organize/c/{CHALLENGE}/p/{PHASE}/inputs/jobs/\d+/$"))
        no_face = page.locator("#no-face")
        expect(no_face).to_be_visible(timeout=110_000)
        expect(page.locator("#job-state")).to_have_attribute("data-state", "failed")
        expect(page.locator("#job-progress")).to_contain_text("1 of 1 inputs looked at")
        [celeba] = sorted(p.name for p in (live.inputs / "CelebA").glob("*.png"))
        expect(no_face.locator("li")).to_have_text([f"CelebA/{celeba}"])
        shot("input-set-no-face")
        page.get_by_role("link", name="Back to the phase").click()
        expect(page.locator("#input-set tbody")).to_contain_text("No input set yet")

        archive = zip_inputs(live.inputs, tmp_path / "inputs.zip")
        upload = page.locator("#input-set-form")
        upload.locator("input[name=archive]").set_input_files(str(archive))
        upload.locator("input[name=landmarks]").set_input_files(str(live.landmarks))
        upload.locator("button[type=submit]").click()
        expect(page.locator(".messages")).to_contain_text("Input set stored: 5 images (5 landmarks from the CSV)")
        rows = page.locator("#input-set tbody tr")
        expect(rows).to_have_count(len(DATASETS))
        assert {rows.nth(i).get_attribute("data-dataset") for i in range(len(DATASETS))} == DATASETS
        shot("input-set-stored")
        assert_page_is_whole(page)

        # Hidden until published: the public CSV has only its header.
        csv_url = f"{base}/organize/c/{CHALLENGE}/p/{PHASE}/leaderboard.csv"
        assert len(list(csv.reader(io.StringIO(requests.get(csv_url, timeout=30).text)))) == 1

        page.click("#publish")
        expect(page.locator(".messages")).to_contain_text("now public")
        expect(page.locator("#published-state")).to_have_text("Published")
        expect(page.locator("#unpublish")).to_be_visible()
        shot("published")

        page.goto(f"{base}/organize/c/{CHALLENGE}/queue/")
        expect(page.locator("#queue-counts")).to_contain_text(PHASE_NAME)
        expect(page.locator("#oldest-age")).to_have_text("—")
        shot("queue")

        page.goto(f"{base}/c/{CHALLENGE}/")
        expect(page.locator("#organize-link")).to_be_visible()
        page.click(f"text={PHASE_NAME}")
        expect(page.locator("table").first).to_contain_text("CelebA")
        shot("public-phase")
        assert_page_is_whole(page)

    # Anonymous visitors may not reach the organizer pages.
    assert requests.get(f"{base}/organize/c/{CHALLENGE}/p/{PHASE}/", timeout=30).status_code == 403
    assert re.search(r"Organize this challenge", requests.get(f"{base}/c/{CHALLENGE}/", timeout=30).text) is None
