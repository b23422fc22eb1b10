"""A participant in Chromium, on a live embedded stack (SQLite + sqla broker + local files, real Celery worker
and gunicorn): sign up, create a team, upload a zip through the phase page, watch the submission page until it
is scored, and find the team ranked on the leaderboard. And an archive missing an image, rejected by name.

Screenshots of every step land in test-artifacts/browser/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import phase_stack, register, sign_up
from tests.support.archives import zip_folder
from tests.support.stack import LiveStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHALLENGE, CHALLENGE_TITLE = "ntire", "NTIRE 2025 browser test"
PHASE, PHASE_NAME = "dev", "Development"
DATASETS = {"CelebA", "CelebChild-Test", "LFW-Test", "WebPhoto-Test", "Wider-Test"}
FINAL_STATES = re.compile(r"^(Scored|Rejected|Failed|Cancelled)$")


@pytest.fixture(scope="module")
def live(tmp_path_factory, weights_dir):
    with phase_stack(tmp_path_factory, weights_dir, "browser-stack", CHALLENGE_TITLE) as stack:
        yield stack


def assert_page_is_whole(page: Page) -> None:
    """Nothing failed to load, no script failed, and the stylesheet applies (the header bar is site.css's)."""
    assert page.http_errors == [], page.http_errors
    assert page.js_errors == [], page.js_errors
    assert page.csp_violations == [], page.csp_violations
    background = page.evaluate("getComputedStyle(document.querySelector('body > header')).backgroundColor")
    assert background == "rgb(35, 57, 93)", f"site.css not applied (header background {background})"




def create_team(page: Page, team: str) -> None:
    """Register for the challenge (open registration, the terms accepted) and create a team."""
    register(page, page.url.split("/c/")[0], CHALLENGE)
    expect(page.locator("#registration-status")).to_have_attribute("data-status", "approved")
    page.click("#create-team")
    page.fill("input[name=name]", team)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/teams/\d+/$"))
    expect(page.locator("h1")).to_have_text(f"Team {team}")


def upload(page: Page, base: str, archive, description: str) -> int:
    page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/")
    form = page.locator("#upload-form")
    form.locator("input[type=file][name=archive]").set_input_files(str(archive))
    form.locator("input[name=description]").fill(description)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/submissions/\d+/$"))
    return int(re.search(r"/submissions/(\d+)/$", page.url).group(1))


def wait_final(page: Page, live: LiveStack, timeout_s: float = 240) -> str:
    """The page reloads itself every 3 s until the run ends; wait for a final state there."""
    state = page.locator("#state")
    try:
        expect(state).to_have_text(FINAL_STATES, timeout=timeout_s * 1000)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{live.log('worker')[-4000:]}") from None
    page.wait_for_load_state("load")
    expect(page.locator("#auto-refresh")).to_have_count(0)  # a final page stops refreshing itself
    return state.inner_text()


def test_participant_uploads_in_browser_and_is_ranked(live, page, screenshots, tmp_path):
    base = live.url
    with screenshots("participant") as shot:
        page.goto(f"{base}/accounts/signup/")
        shot("signup-form")
        sign_up(page, base, "alice")
        shot("signed-up-home")

        page.click(f"text={CHALLENGE_TITLE}")
        expect(page.locator("h1")).to_have_text(CHALLENGE_TITLE)
        shot("challenge")
        create_team(page, "Alice Lab")
        shot("team")

        page.goto(f"{base}/c/{CHALLENGE}/")
        page.click(f"text={PHASE_NAME}")
        expect(page).to_have_url(f"{base}/c/{CHALLENGE}/p/{PHASE}/")
        expect(page.locator("h2", has_text="Submit as Alice Lab")).to_be_visible()
        expect(page.locator("#submissions")).to_contain_text("No submission yet.")
        shot("phase")

        archive = zip_folder(live.inputs, tmp_path / "restored.zip")  # "restored" = the inputs themselves
        submission = upload(page, base, archive, "browser e2e")
        expect(page.locator(".messages")).to_contain_text(f"Submission {submission} received")
        expect(page.locator("h1")).to_contain_text(f"Submission {submission}")
        shot("submission-queued")

        state = wait_final(page, live)
        shot("submission-final")
        assert state == "Scored", (state, page.locator("#log").inner_text(), live.log("worker")[-4000:])
        expect(page.locator("#state")).to_have_class("state-scored")
        log_states = page.locator("#log li span").all_inner_texts()
        assert log_states[-3:] == ["validating", "scoring", "scored"], log_states
        expect(page.locator("p.warning")).to_contain_text("not the official ones")
        total = page.locator("#total").inner_text()
        assert re.fullmatch(r"-?\d+\.\d{4}", total), total
        expect(page.locator("#images tbody tr")).to_have_count(len(DATASETS))  # one image per dataset

        page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/")
        row = page.locator("#submissions tbody tr", has_text=str(submission))
        expect(row.locator("td").nth(2)).to_have_text("Scored")
        expect(row.locator("td").nth(3)).to_have_text(total)
        page.click("#leaderboard-link")
        expect(page).to_have_url(f"{base}/c/{CHALLENGE}/p/{PHASE}/leaderboard/")
        shot("leaderboard")
        assert_page_is_whole(page)

        warning = page.locator("#weights-warning")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("not the official ones")
        expect(page.locator("#leaderboard tbody tr")).to_have_count(1)
        team_row = page.locator('#leaderboard tbody tr[data-team="Alice Lab"]')
        cells = team_row.locator("td")
        expect(cells.nth(0)).to_have_text("1")
        expect(cells.nth(1)).to_contain_text("Alice Lab")
        expect(team_row.locator("td.total")).to_have_text(total)

        tables = page.locator("table.dataset")
        expect(tables).to_have_count(len(DATASETS))
        assert {tables.nth(i).get_attribute("data-dataset") for i in range(len(DATASETS))} == DATASETS
        for name in DATASETS:
            expect(page.locator(f"#dataset-{name}")).to_have_text(name)
            rows = page.locator(f'table.dataset[data-dataset="{name}"] tbody tr')
            expect(rows).to_have_count(1)
            expect(rows.locator("td").first).to_have_text("Alice Lab")
            expect(rows.locator("td").last).to_have_text("1")  # images scored in that dataset


def test_archive_missing_an_image_is_rejected_with_its_path(live, page, screenshots, tmp_path):
    base = live.url
    missing = sorted(f"{p.parent.name}/{p.name}" for p in live.inputs.glob("*/*.png"))[0]
    with screenshots("rejected") as shot:
        sign_up(page, base, "bob")
        page.click(f"text={CHALLENGE_TITLE}")
        create_team(page, "Bob Lab")
        archive = zip_folder(live.inputs, tmp_path / "incomplete.zip", skip={missing})
        submission = upload(page, base, archive, "one image short")
        shot("submission-queued")

        state = wait_final(page, live)
        shot("submission-final")
        assert state == "Rejected", (state, page.locator("#log").inner_text())
        expect(page.locator("#state")).to_have_class("state-rejected")
        log = page.locator("#log")
        expect(log.locator("li").last.locator("span")).to_have_text("rejected")
        expect(log).to_contain_text(f"{missing} is missing from the submission.")
        expect(page.locator("#total")).to_have_count(0)

        page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/")
        row = page.locator("#submissions tbody tr", has_text=str(submission))
        expect(row.locator("td").nth(2)).to_have_text("Rejected")
        shot("phase")
        page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/leaderboard/")
        expect(page.locator('#leaderboard tbody tr[data-team="Bob Lab"]')).to_have_count(0)
        shot("leaderboard")
        assert_page_is_whole(page)
