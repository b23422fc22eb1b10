"""What the organizer browser tests share: the superuser their stacks create, and signing in as it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

ORGANIZER = "boss"
ORGANIZER_PASSWORD = "an-Organizer-passw0rd!"


def log_in_organizer(page: Page, base: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", ORGANIZER)
    page.fill("#id_password", ORGANIZER_PASSWORD)
    page.click("main form button[type=submit]")
    expect(page.locator("#logout")).to_be_visible()
