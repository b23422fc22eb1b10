"""Chromium (Debian's, never a downloaded one) driven by Python Playwright, and screenshots kept as artifacts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.csp import CSP_LISTENER
from tests.support.env import in_ci

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (./dev setup installs Debian's)"
        if in_ci():
            pytest.fail(message)  # CI never skips a test for a missing part
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # 5 s by default: too short for an upload on a busy 2-core machine

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh context per test: its own cookies, so its own signed-in user. ``page.http_errors`` lists every
    response of 400 or more; ``page.js_errors`` every uncaught script error and every console error (a 404
    stylesheet shows up only there: served as text/html with nosniff, Chromium aborts it without a response).
    ``page.csp_violations``: what the pages' Content-Security-Policy blocked (also in ``js_errors``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.http_errors, page.js_errors, page.csp_violations = [], [], []

    def on_console(message) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and not where.endswith("/favicon.ico"):  # the site has no icon
            page.js_errors.append(f"{message.text} ({where})")
            if message.text.startswith("CSP violation") or "Content Security Policy" in message.text:
                page.csp_violations.append(message.text)

    page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
            and page.http_errors.append(f"{r.status} {r.request.method} {r.url}"))
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.on("console", on_console)
    yield page
    context.close()


class Screenshots:
    """``shots("step")`` writes ``<folder>/<prefix>-NN-step.png``, full page, numbered in order."""

    def __init__(self, page, folder: Path, prefix: str):
        self.page, self.folder, self.prefix, self.count = page, folder, prefix, 0
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{prefix}-*.png"):  # a previous run's pictures would mislead
            stale.unlink()
        self.paths: list[Path] = []

    def __call__(self, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.prefix}-{self.count:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower())}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        return path


@pytest.fixture
def screenshots(page, artifacts_dir):
    """A factory ``screenshots(prefix)`` used as a context manager (try/finally inside): the test shoots its
    steps, and if anything in the block raises, the page as it was then is kept as ``<prefix>-NN-failed.png``."""

    @contextmanager
    def record(prefix: str) -> Iterator[Screenshots]:
        shots = Screenshots(page, artifacts_dir / "browser", prefix)
        failed = True
        try:
            yield shots
            failed = False
        finally:
            if failed:
                try:
                    shots("failed")
                except Exception as exc:  # the browser may be gone; keep the test's own error
                    print(f"no failure screenshot: {exc}")

    return record


@contextmanager
def phase_stack(tmp_path_factory, weights_dir, name: str, title: str, setup_code: str | None = None) -> Iterator:
    """An embedded stack with one phase "ntire/dev" (1 image per dataset, profile ntire2025-dev),
    a worker and the web server: one per test module, so the worker loads its models once."""
    from tests.support.env import subset_of_validation
    from tests.support.stack import LiveStack

    root = tmp_path_factory.mktemp(name)
    inputs, landmarks = subset_of_validation(root, per_dataset=1)
    stack = LiveStack("embedded", root / "stack", weights_dir)
    try:
        stack.manage("migrate", "--noinput")
        stack.manage("create_phase", "--challenge", "ntire", "--title", title, "--phase", "dev",
                     "--name", "Development", "--profile", "ntire2025-dev", "--inputs", str(inputs),
                     "--landmarks", str(landmarks))
        if setup_code:
            stack.shell(setup_code)
        stack.start_worker()
        stack.start_web()
        stack.inputs = inputs
        yield stack
    finally:
        if "worker" in stack.processes:
            stack.kill("worker")  # the sqla transport's warm shutdown takes its full 15 s grace
        stack.close()


PASSWORD = "a-Long-passw0rd!"  # noqa: S105 - a throwaway test user


def sign_up(page, base: str, username: str) -> None:
    """Sign up through the form and see the session's user in the header."""
    from playwright.sync_api import expect

    page.goto(f"{base}/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.org")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("#logout")).to_be_visible()
    expect(page.locator("header nav")).to_contain_text(username)


def register(page, base: str, challenge: str, full_name: str = "Alice Tester",
             affiliation: str = "Test University") -> None:
    """Register for a challenge from its page: name, affiliation, the terms accepted."""
    page.goto(f"{base}/c/{challenge}/")
    form = page.locator("#register-form")
    form.locator("input[name=full_name]").fill(full_name)
    form.locator("input[name=affiliation]").fill(affiliation)
    form.locator("#accept-terms").check()
    form.locator("#register").click()
