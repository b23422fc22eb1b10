"""An organizer in Chromium, on a live embedded stack: download a challenge as a bundle, create a new challenge
by uploading it, and turn the 2025 challenge into its 2026 edition in two clicks ("New edition", "Create").

Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

import json
import zipfile

import pytest
from playwright.sync_api import expect

from tests.support.browser import ORGANIZER_PASSWORD, log_in_organizer
from tests.support.env import subset_of_validation
from tests.support.stack import LiveStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = ORGANIZER_PASSWORD
SLUG, TITLE = "ntire2025-fr", "NTIRE 2025 Face Restoration"

BASELINE = """
import zipfile, pathlib
from django.contrib.auth import get_user_model
from django.core.files import File
from competitions.models import Phase
from organizers.services import add_baseline
inputs = pathlib.Path({inputs!r})
with zipfile.ZipFile({zip!r}, "w") as archive:
    for png in sorted(inputs.glob("*/*.png")):
        archive.write(png, f"{{png.parent.name}}/{{png.name}}")
with open({zip!r}, "rb") as handle:
    add_baseline(phase=Phase.objects.get(slug="dev"), name="Identity baseline", upload=File(handle, name="b.zip"),
                 by_user=get_user_model().objects.get(username="boss"), enqueue=False)
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory, weights_dir):
    root = tmp_path_factory.mktemp("bundle-stack")
    inputs, landmarks = subset_of_validation(root, per_dataset=1)
    stack = LiveStack("embedded", root / "stack", weights_dir,
                      extra_env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD})
    try:
        stack.manage("migrate", "--noinput")
        stack.manage("createsuperuser", "--noinput", "--username", "boss", "--email", "boss@example.org")
        stack.manage("create_phase", "--challenge", SLUG, "--title", TITLE, "--phase", "dev", "--name", "Development",
                     "--profile", "ntire2025-dev", "--inputs", str(inputs), "--landmarks", str(landmarks))
        stack.shell(BASELINE.format(inputs=str(inputs), zip=str(root / "baseline.zip")))
        stack.start_web()
        yield stack
    finally:
        stack.close()


def test_an_organizer_downloads_a_bundle_and_creates_a_challenge_from_it(live, page, screenshots, tmp_path):
    base = live.url
    with screenshots("bundle") as shot:
        log_in_organizer(page, base)
        page.goto(f"{base}/organize/c/{SLUG}/")
        shot("challenge")
        with page.expect_download() as download_info:
            page.click("#bundle-download")
        bundle = tmp_path / "bundle.zip"
        download_info.value.save_as(bundle)
        assert download_info.value.suggested_filename == f"{SLUG}-bundle.zip"
        with zipfile.ZipFile(bundle) as archive:
            manifest = json.loads(archive.read("challenge.json"))
            assert sum(name.startswith("inputs/") for name in archive.namelist()) == 5
        assert manifest["challenge"]["slug"] == SLUG
        assert [b["name"] for b in manifest["phases"][0]["baselines"]] == ["Identity baseline"]

        page.goto(f"{base}/organize/")
        page.click("#bundle-import")
        page.locator("input[name=bundle]").set_input_files(str(bundle))
        page.fill("#id_slug", "fr-from-bundle")
        page.fill("#id_title", "Face Restoration, re-created")
        page.fill("#id_start", "2026-04-01T09:00")
        shot("import-form")
        page.click("#bundle-submit")
        expect(page.locator("h1")).to_have_text("Face Restoration, re-created")
        expect(page.locator("main")).to_contain_text("5 input image(s), 1 baseline(s)")
        row = page.locator("#phases tr[data-phase=dev]")
        expect(row).to_contain_text("2026-04-01 09:00")
        expect(row).to_contain_text("ntire2025-dev")
        shot("imported")
        assert page.http_errors == [] and page.js_errors == [], (page.http_errors, page.js_errors)


def test_the_2025_challenge_becomes_its_2026_edition_in_two_clicks(live, page, screenshots):
    base = live.url
    with screenshots("edition") as shot:
        log_in_organizer(page, base)
        page.goto(f"{base}/organize/c/{SLUG}/")
        page.click("#new-edition")  # one
        expect(page.locator("#id_slug")).to_have_value("ntire2026-fr")
        expect(page.locator("#id_title")).to_have_value("NTIRE 2026 Face Restoration")
        expect(page.locator("#id_profile_dev")).to_have_value("ntire2026-dev")
        shot("form")
        page.click("#edition-submit")  # two
        expect(page.locator("h1")).to_have_text("NTIRE 2026 Face Restoration")
        expect(page.locator("#phases tr[data-phase=dev]")).to_contain_text("ntire2026-dev")
        shot("created")
        page.goto(f"{base}/organize/c/ntire2026-fr/p/dev/")
        # 2026's thresholds: Wider-Test 0.2 (2025: 0.3), WebPhoto-Test 0.25; CelebA's 0.5 unchanged.
        expect(page.locator("tr[data-dataset=Wider-Test] td").nth(2)).to_have_text("0.2")
        expect(page.locator("tr[data-dataset=WebPhoto-Test] td").nth(2)).to_have_text("0.25")
        expect(page.locator("tr[data-dataset=CelebA] td").nth(2)).to_have_text("0.5")
        assert page.http_errors == [] and page.js_errors == [], (page.http_errors, page.js_errors)
