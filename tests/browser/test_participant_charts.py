"""A team reads its results in Chromium, on a live embedded stack (SQLite + sqla broker + local files, real
Celery worker and gunicorn): the per-image table sorts by a column, the histograms, the leaderboard's scatter and
per-dataset bars and the team's history draw with plotly.js (served from our own origin), the failed image shows
beside its input, and, the phase's rule being ``selected``, the team picks the submission that counts.

CelebA's identity threshold is raised above 1 so the CelebA image (the input itself, similarity 1.0) fails the
identity test. Screenshots of every step land in test-artifacts/browser/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import phase_stack, register, sign_up
from tests.support.archives import zip_folder
from tests.support.stack import LiveStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHALLENGE, CHALLENGE_TITLE = "ntire", "NTIRE 2025 charts test"
PHASE, PHASE_NAME = "dev", "Development"
FINAL_STATES = re.compile(r"^(Scored|Rejected|Failed|Cancelled)$")
SETUP = """
from competitions.models import Phase
phase = Phase.objects.get(challenge__slug="ntire", slug="dev")
phase.selection = Phase.Selection.SELECTED
thresholds = {**phase.profile_snapshot["identity_thresholds"], "CelebA": 1.5}
phase.profile_snapshot = {**phase.profile_snapshot, "identity_thresholds": thresholds}
phase.save()
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory, weights_dir):
    with phase_stack(tmp_path_factory, weights_dir, "charts-stack", CHALLENGE_TITLE, SETUP) as stack:
        yield stack


def sign_up_with_team(page: Page, base: str, username: str, team: str) -> None:
    sign_up(page, base, username)
    register(page, base, CHALLENGE)  # open registration: approved at once, then a team can be made
    expect(page.locator("#registration-status")).to_have_attribute("data-status", "approved")
    page.click("#create-team")
    page.fill("input[name=name]", team)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/teams/\d+/$"))


def upload_and_wait(page: Page, live: LiveStack, archive) -> int:
    page.goto(f"{live.url}/c/{CHALLENGE}/p/{PHASE}/")
    form = page.locator("#upload-form")
    form.locator("input[type=file][name=archive]").set_input_files(str(archive))
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/submissions/\d+/$"))
    submission = int(re.search(r"/submissions/(\d+)/$", page.url).group(1))
    try:
        expect(page.locator("#state")).to_have_text(FINAL_STATES, timeout=120_000)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{live.log('worker')[-4000:]}") from None
    page.wait_for_load_state("load")
    assert page.locator("#state").inner_text() == "Scored", page.locator("#log").inner_text()
    return submission


def wait_for_charts(page: Page, selector: str, count: int) -> None:
    """plotly.js drew ``count`` charts under ``selector`` (each a .plot-container holding an SVG)."""
    expect(page.locator(f"{selector} .plot-container")).to_have_count(count)
    expect(page.locator(f"{selector} .plot-container svg.main-svg").first).to_be_visible()


def column_values(page: Page, index: int) -> list[float]:
    return [float(v) for v in page.eval_on_selector_all(
        "#images tbody tr", f"rows => rows.map(r => r.cells[{index}].dataset.value)")]


def assert_page_is_whole(page: Page) -> None:
    assert page.response_csp, "the page came without a Content-Security-Policy"
    assert page.csp_violations == [], page.csp_violations
    assert page.http_errors == [], page.http_errors
    assert page.js_errors == [], page.js_errors


@pytest.fixture(autouse=True)
def record_policies(page: Page) -> None:
    """``page.response_csp``: the policy of the last HTML page loaded."""
    page.response_csp = ""

    def on_response(response) -> None:
        if response.request.resource_type == "document":
            page.response_csp = response.headers.get("content-security-policy", "")

    page.on("response", on_response)


def test_team_sorts_its_images_sees_the_charts_and_picks_the_submission_that_counts(live, page, screenshots,
                                                                                    tmp_path):
    base = live.url
    with screenshots("charts") as shot:
        sign_up_with_team(page, base, "carol", "Team Carol")
        submission = upload_and_wait(page, live, zip_folder(live.inputs, tmp_path / "restored.zip"))
        shot("submission-scored")

        # The per-image table: one row per image, the CelebA one failed the identity test.
        rows = page.locator("#images tbody tr")
        expect(rows).to_have_count(5)
        failed = page.locator("#images tbody tr.failed")
        expect(failed).to_have_count(1)
        assert failed.get_attribute("data-image").startswith("CelebA/")
        background = failed.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor")
        assert background == "rgb(253, 232, 232)", background

        # Sort by CLIP-IQA (the sixth column): ascending, then descending; the order changes.
        headers = page.locator("#images thead th")
        clip = headers.nth(5)
        expect(clip).to_contain_text("CLIP-IQA")
        before = page.eval_on_selector_all("#images tbody tr", "rows => rows.map(r => r.dataset.image)")
        initial = column_values(page, 5)
        clip.locator("button.sort").click()
        expect(clip).to_have_attribute("aria-sort", "ascending")
        ascending = column_values(page, 5)
        assert ascending == sorted(initial)
        shot("images-sorted-ascending")
        clip.locator("button.sort").click()
        expect(clip).to_have_attribute("aria-sort", "descending")
        descending = column_values(page, 5)
        assert descending == sorted(initial, reverse=True)
        after = page.eval_on_selector_all("#images tbody tr", "rows => rows.map(r => r.dataset.image)")
        assert sorted(after) == sorted(before) and (ascending != initial or descending != initial)
        # Sorting by name sorts as text.
        headers.nth(1).locator("button.sort").click()
        names = page.eval_on_selector_all("#images tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
        assert names == sorted(names, key=str.lower)

        # Histograms: identity similarity, CLIP-IQA, MUSIQ.
        wait_for_charts(page, "#histograms", 3)
        expect(page.locator("#histograms .barlayer .trace").first).to_be_attached()
        # The failed image beside its input, both loaded through the submission's image views.
        pair = page.locator(".pair")
        expect(pair).to_have_count(1)
        pair.scroll_into_view_if_needed()
        for kind in ("input", "restored"):
            image = pair.locator(f"img.{kind}")
            expect(image).to_be_visible()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        shot("submission-charts-and-failed-image")
        assert_page_is_whole(page)

        # The phase's rule is "selected": the team picks this run.
        page.locator("#select-form button").click()
        expect(page.locator(".messages")).to_contain_text(f"Submission {submission} now counts")
        expect(page.locator("#counts-note")).to_contain_text("This submission counts")
        expect(page.locator("#select-form")).to_have_count(0)
        shot("submission-selected")
        page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/")
        expect(page.locator("#counted-submission")).to_have_text(f"submission {submission}")
        expect(page.locator("#submissions tbody tr.counted")).to_contain_text(str(submission))
        expect(page.locator("#quota-reset")).to_contain_text("UTC")
        shot("phase-counted")

        # The leaderboard: the scatter (one team) and the per-dataset bars, switched to MUSIQ.
        page.click("#leaderboard-link")
        wait_for_charts(page, "#charts", 2)
        expect(page.locator("#chart-scatter .scatterlayer .point")).to_have_count(1)
        expect(page.locator("#chart-scatter .textpoint")).to_have_text("Team Carol")
        expect(page.locator("#chart-datasets .barlayer .point")).to_have_count(5)
        page.select_option("#dataset-chart-metric", "datasets-musiq")
        expect(page.locator("#chart-datasets .gtitle")).to_contain_text("MUSIQ per dataset")
        shot("leaderboard-charts")
        assert_page_is_whole(page)

        # The team's page: its score history in the phase.
        page.goto(f"{base}/c/{CHALLENGE}/")
        page.click("text=Team Carol")
        wait_for_charts(page, "section.history", 1)
        expect(page.locator("section.history .scatterlayer .point")).to_have_count(1)
        shot("team-history")
        assert_page_is_whole(page)


def test_the_policy_is_enforced_an_inline_script_without_the_nonce_is_blocked(live, page):
    """The other tests see no violation because the pages keep the policy, not because none is enforced."""
    page.goto(f"{live.url}/c/{CHALLENGE}/")
    assert "script-src 'self' 'nonce-" in page.response_csp
    with page.expect_console_message(lambda message: message.text.startswith("CSP violation")):
        page.evaluate("""() => { const s = document.createElement("script");
                                 s.textContent = "window.injected = true;"; document.body.append(s); }""")
    assert page.evaluate("() => window.injected === undefined")
    assert any("script-src" in v for v in page.csp_violations), page.csp_violations
