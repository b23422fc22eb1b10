"""The whole participant journey in Chromium, with two browser contexts on a live embedded stack (gunicorn, a real
Celery worker, the file-based mailbox): a participant signs up, verifies their email address from the mailbox,
reads the terms, registers and waits; the organizer approves the request; the participant downloads the input
set and the landmarks from the phase page, checks the sha256 shown, builds a submission from the downloaded
files (checked with ``python -m scoring check``), uploads it and sees it scored and ranked.

Screenshots of both contexts land in test-artifacts/browser/ (journey-participant-*, journey-organizer-*).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, Screenshots
from tests.support.archives import zip_folder
from tests.support.browser import ORGANIZER, ORGANIZER_PASSWORD, log_in_organizer
from tests.support.env import ROOT, subset_of_validation
from tests.support.stack import LiveStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHALLENGE, TITLE, PHASE = "ntire", "NTIRE 2025 whole journey", "dev"
TERMS = "Teams publish a factsheet. **Results are public.**"
SETUP = f"""
from competitions.models import Challenge
from competitions.services import save_page
challenge = Challenge.objects.get(slug={CHALLENGE!r})
challenge.registration_mode = "approval"
challenge.save()
save_page(challenge=challenge, kind="overview", body="Restore the faces; keep who they are.")
save_page(challenge=challenge, kind="terms", body={TERMS!r})
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory, weights_dir):
    root = tmp_path_factory.mktemp("journey-stack")
    inputs, landmarks = subset_of_validation(root, per_dataset=1)
    mailbox = root / "mail"
    stack = LiveStack("embedded", root / "stack", weights_dir, extra_env={
        "DJANGO_SUPERUSER_PASSWORD": ORGANIZER_PASSWORD, "FR_EMAIL_VERIFICATION": "1",
        "FR_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "FR_EMAIL_FILE_PATH": str(mailbox)})
    try:
        stack.manage("migrate", "--noinput")
        stack.manage("createsuperuser", "--noinput", "--username", ORGANIZER, "--email", "boss@example.org")
        # Loading the input set queues the build of its downloads; the worker builds them once it starts.
        stack.manage("create_phase", "--challenge", CHALLENGE, "--title", TITLE, "--phase", PHASE,
                     "--name", "Development", "--profile", "ntire2025-dev", "--inputs", str(inputs),
                     "--landmarks", str(landmarks))
        stack.shell(SETUP)
        stack.start_worker()
        stack.start_web()
        stack.mailbox, stack.inputs = mailbox, inputs
        yield stack
    finally:
        if "worker" in stack.processes:
            stack.kill("worker")
        stack.close()


def mail_to(mailbox: Path, address: str, containing: str, timeout_s: float = 30) -> str:
    """The newest message of the file-based mailbox to ``address`` that contains ``containing``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        messages = [p.read_text(errors="replace") for p in sorted(mailbox.glob("*.log"))] if mailbox.exists() else []
        found = [m for m in messages if f"To: {address}" in m and containing in m]
        if found:
            return found[-1]
        time.sleep(0.5)
    raise AssertionError(f"no mail to {address} containing {containing!r} in {mailbox}")


def wait_for_downloads(page: Page, live: LiveStack, timeout_s: float = 180) -> None:
    """The worker builds the phase's files after the input set is stored; the page says so until then."""
    deadline = time.monotonic() + timeout_s
    while page.locator('#data-files tr[data-kind="inputs"] a.download').count() == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"the downloads were never built\n--- worker ---\n{live.log('worker')[-4000:]}")
        time.sleep(2)
        page.reload()


def download(page: Page, kind: str, target: Path) -> tuple[Path, str]:
    """Click the phase page's link for ``kind``; the saved file and the sha256 the page shows."""
    row = page.locator(f'#data-files tr[data-kind="{kind}"]')
    shown = row.locator("code.sha256").inner_text().strip()
    with page.expect_download() as info:
        row.locator("a.download").click()
    path = target / info.value.suggested_filename
    info.value.save_as(path)
    return path, shown


def test_the_whole_participant_journey(live, browser, page, screenshots, artifacts_dir, tmp_path):
    base = live.url
    organizer_context = browser.new_context(viewport={"width": 1280, "height": 800})
    organizer = organizer_context.new_page()
    organizer_shots = Screenshots(organizer, artifacts_dir / "browser", "journey-organizer")
    try:
        with screenshots("journey-participant") as shot:
            # Sign up: the address must be verified before registering.
            page.goto(f"{base}/accounts/signup/")
            page.fill("#id_username", "carol")
            page.fill("#id_email", "carol@example.org")
            page.fill("#id_password1", PASSWORD)
            page.fill("#id_password2", PASSWORD)
            page.click("main form button[type=submit]")
            expect(page.locator(".messages")).to_contain_text("We sent a link to carol@example.org")
            shot("signed-up")
            page.goto(f"{base}/c/{CHALLENGE}/")
            expect(page.locator("#participation-refusal")).to_contain_text("Verify your email address")
            message = mail_to(live.mailbox, "carol@example.org", "verify your email address")
            link = re.search(r"(http://\S+/accounts/verify/\S+/)", message).group(1)
            page.goto(link)
            expect(page.locator("#email-verified")).to_be_visible()
            shot("email-verified")

            # Read the terms, register, wait for the organizers.
            page.goto(f"{base}/c/{CHALLENGE}/")
            page.click('#page-tabs a[data-page="terms"]')
            expect(page.locator("#page-terms strong")).to_have_text("Results are public.")
            shot("terms")
            page.fill("#register-form input[name=full_name]", "Carol Restorer")
            page.fill("#register-form input[name=affiliation]", "Face Lab, Example University")
            page.check("#accept-terms")
            page.click("#register")
            expect(page.locator("#registration-status")).to_have_attribute("data-status", "pending")
            expect(page.locator("#participation-refusal")).to_contain_text("waiting for the organizers' approval")
            expect(page.locator("#create-team")).to_have_count(0)
            page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/")
            expect(page.locator("#data-refusal")).to_contain_text("waiting for the organizers' approval")
            expect(page.locator("#data-files a.download")).to_have_count(0)  # names listed, no links
            shot("waiting")

            # The organizer approves, in their own browser context.
            log_in_organizer(organizer, base)
            organizer.goto(f"{base}/organize/c/{CHALLENGE}/registrations/")
            request = organizer.locator('#registrations tr[data-user="carol"]')
            expect(request).to_have_attribute("data-status", "pending")
            expect(request).to_contain_text("Face Lab, Example University")
            organizer_shots("requests")
            request.locator("input[name=registrations]").check()
            organizer.fill("#decide-form textarea[name=message]", "Welcome to the challenge.")
            organizer.click("#approve-selected")
            expect(organizer.locator(".messages")).to_contain_text("1 registration approved")
            expect(organizer.locator('#registrations tr[data-user="carol"]')).to_have_attribute(
                "data-status", "approved")
            organizer_shots("approved")
            assert "Welcome to the challenge." in mail_to(live.mailbox, "carol@example.org", "registration approved")

            # Download the input set and the landmarks from the phase page; the sha256 is the one shown.
            page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/")
            wait_for_downloads(page, live)
            shot("downloads")
            downloads = tmp_path / "downloads"
            downloads.mkdir()
            inputs_zip, inputs_sha = download(page, "inputs", downloads)
            landmarks_csv, landmarks_sha = download(page, "landmarks", downloads)
            assert hashlib.sha256(inputs_zip.read_bytes()).hexdigest() == inputs_sha
            assert hashlib.sha256(landmarks_csv.read_bytes()).hexdigest() == landmarks_sha

            # Build the submission from the downloaded files: the inputs themselves, as the starting kit does.
            inputs = tmp_path / "inputs"
            with zipfile.ZipFile(inputs_zip) as archive:
                archive.extractall(inputs)
            from scoring.inputs import read_landmarks, scan_inputs

            images = scan_inputs(inputs)
            assert {img.relpath for img in images} == {f"{p.parent.name}/{p.name}"
                                                       for p in live.inputs.glob("*/*.png")}
            assert set(read_landmarks(landmarks_csv)) == {img.stem for img in images}
            submission_zip = zip_folder(inputs, tmp_path / "carol.zip")
            check = subprocess.run([sys.executable, "-m", "scoring", "check", "--inputs", str(inputs),
                                    str(submission_zip)], cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert check.returncode == 0, check.stdout + check.stderr

            # A team, the upload, the score.
            page.goto(f"{base}/c/{CHALLENGE}/")
            page.click("#create-team")
            page.fill("input[name=name]", "Carol Lab")
            page.click("main form button[type=submit]")
            expect(page).to_have_url(re.compile(r"/teams/\d+/$"))
            page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/")
            form = page.locator("#upload-form")
            form.locator("input[type=file][name=archive]").set_input_files(str(submission_zip))
            form.locator("input[name=description]").fill("built from the downloads")
            form.locator("button[type=submit]").click()
            expect(page).to_have_url(re.compile(r"/submissions/\d+/$"))
            try:
                expect(page.locator("#state")).to_have_text("Scored", timeout=240_000)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- worker ---\n{live.log('worker')[-4000:]}") from None
            shot("scored")
            page.goto(f"{base}/c/{CHALLENGE}/p/{PHASE}/leaderboard/")
            expect(page.locator('[data-team="Carol Lab"]').first).to_be_visible()
            shot("leaderboard")
        assert page.http_errors == [], page.http_errors
        assert page.js_errors == [] and page.csp_violations == [], (page.js_errors, page.csp_violations)
    finally:
        organizer_context.close()
