"""Challenge bundles on PostgreSQL: export -> import -> export gives the same manifest but for slugs and dates,
input files are stored once per sha256, participants stay behind; a hostile or broken bundle changes nothing
and every problem is listed with its path; "new edition" copies a 2025 challenge under the 2026 profiles."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.urls import reverse
from django.utils import timezone

from competitions.models import Challenge, InputDataset, InputImage, Phase
from competitions.services import create_phase, load_input_set
from organizers import bundles, services
from submissions.models import Submission
from teams.models import Membership, Team
from tests.platform.conftest import upload_file

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def edition_2025(challenge, loaded_phase, input_folder, organizer, make_team, make_archive):
    """The fixture challenge as a 2025 edition: a development phase (loaded), a hidden test phase on the same
    inputs with a closing date, a baseline on each, and a participating team with a member."""
    test = create_phase(challenge=challenge, slug="test", name="Final test", kind="test", order=2,
                        scoring_profile="ntire2025-no-qalign", visibility="hidden", selection="selected",
                        opens_at=loaded_phase.opens_at + timedelta(days=40),
                        closes_at=loaded_phase.opens_at + timedelta(days=47, hours=3), max_per_day=3,
                        max_archive_bytes=10**8, shown_metrics=["clipiqa", "fid"])
    load_input_set(test, *input_folder)
    for phase in (loaded_phase, test):
        services.add_baseline(phase=phase, name="Unsharp baseline", upload=upload_file(make_archive()),
                              by_user=organizer, description="", enqueue=False)
    participants = make_team("Alpha", members=["alpha2"])
    Submission.objects.create(phase=loaded_phase, team=participants, submitted_by=participants.created_by,
                              archive="submissions/x.zip", archive_size=1)
    return challenge


def export(challenge: Challenge, path: Path) -> dict:
    with open(path, "wb") as handle:
        return bundles.export_bundle(challenge, handle)


def exported_with(challenge: Challenge, tmp_path: Path, **about) -> Path:
    """The challenge's bundle with these fields of its manifest's ``challenge`` replaced, every file kept."""
    export(challenge, tmp_path / "good.zip")
    with zipfile.ZipFile(tmp_path / "good.zip") as good:
        manifest = json.loads(good.read(bundles.MANIFEST))
        members = {name: good.read(name) for name in good.namelist() if name != bundles.MANIFEST}
    manifest["challenge"].update(about)
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(changed, "w") as archive:
        archive.writestr(bundles.MANIFEST, json.dumps(manifest))
        for name, data in members.items():
            archive.writestr(name, data)
    return changed


def comparable(manifest: dict) -> dict:
    """The manifest without what an import chooses: the slug and the start date."""
    data = json.loads(json.dumps(manifest))
    data.pop("start")
    data["challenge"].pop("slug")
    return data


def stored_files(storage: Path) -> list[str]:
    media = storage / "media"
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def database_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count()
            for model in (Challenge, Phase, InputDataset, InputImage, Team, Membership, Submission)}


def test_export_import_export_gives_the_same_manifest_but_slug_and_dates(edition_2025, organizer, storage,
                                                                         tmp_path):
    assert connection.vendor == "postgresql"
    first = export(edition_2025, tmp_path / "first.zip")
    assert [p["slug"] for p in first["phases"]] == ["dev", "test"]
    assert first["phases"][1]["closes_after_s"] - first["phases"][1]["opens_after_s"] == 7 * 86400 + 3 * 3600
    assert [b["name"] for p in first["phases"] for b in p["baselines"]] == ["Unsharp baseline"] * 2
    files_before = stored_files(storage)

    done = services.import_bundle(tmp_path / "first.zip", slug="ntire-copy", start=START, user=organizer,
                                  enqueue=False)
    copy = done.challenge
    assert (done.phases, done.images, len(done.baselines)) == (2, 4, 2)
    # Both phases share their two images, which storage holds already: nothing new but the baseline archives.
    assert (done.files_stored, done.files_reused) == (0, 2)
    new_files = sorted(set(stored_files(storage)) - set(files_before))
    assert len(new_files) == 2 and all(name.startswith("submissions/") for name in new_files)
    inputs = [f for f in stored_files(storage) if f.startswith("inputs/")]
    assert len(inputs) == len(set(InputImage.objects.values_list("sha256", flat=True))) == 2

    dev, test = copy.phases.order_by("order")
    assert dev.opens_at == START and test.opens_at == START + timedelta(days=40)
    assert test.closes_at == START + timedelta(days=47, hours=3)
    assert (test.visibility, test.selection, test.max_per_day, test.published) == ("hidden", "selected", 3, False)
    # Participants, their teams and submissions stay behind; the baselines come along as baseline teams.
    assert list(copy.teams.values_list("name", "is_baseline")) == [("Unsharp baseline", True)]
    assert not Membership.objects.filter(challenge=copy).exists()
    assert list(copy.organizers.all()) == [organizer]

    second = export(copy, tmp_path / "second.zip")
    assert second["challenge"]["slug"] == "ntire-copy" and second["start"] == "2026-03-02T09:00:00Z"
    assert comparable(second) == comparable(first)


def test_a_hostile_broken_bundle_changes_nothing_and_lists_every_problem(edition_2025, organizer, storage,
                                                                        tmp_path):
    export(edition_2025, tmp_path / "good.zip")
    with zipfile.ZipFile(tmp_path / "good.zip") as good:
        manifest = json.loads(good.read(bundles.MANIFEST))
        members = {name: good.read(name) for name in good.namelist() if name != bundles.MANIFEST}
    missing = manifest["phases"][0]["datasets"][0]["images"][0]["file"]
    manifest["phases"][1]["datasets"][0]["identity_threshold"] = 1.5  # a bad threshold (cosine <= 1)
    manifest["phases"][1]["datasets"][1]["identity_threshold"] = 0.45  # disagrees with the profile's 0.3
    manifest["phases"][0]["kind"] = "final"  # a schema violation
    manifest["phases"][0]["limits"]["max_per_day"] = True
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr(bundles.MANIFEST, json.dumps(manifest))
        for name, data in members.items():
            if name != missing:  # a missing input
                archive.writestr(name, data)
        archive.writestr("../../evil.png", b"\x89PNG\r\n\x1a\n")  # a hostile file name
        archive.writestr("inputs/extra.txt", b"not named anywhere")
    before, files_before = database_counts(), stored_files(storage)

    with pytest.raises(bundles.BundleInvalid) as refused:
        services.import_bundle(bad, slug="ntire", start=START, user=organizer)

    found = {(p.code, p.path) for p in refused.value.problems}
    assert ("path_escape", "../../evil.png") in found
    assert ("missing", "$.phases[0].datasets[0].images[0].file") in found
    assert ("schema", "$.phases[1].datasets[0].identity_threshold") in found
    assert ("threshold", "$.phases[1].datasets[1].identity_threshold") in found
    assert ("schema", "$.phases[0].kind") in found
    assert ("schema", "$.phases[0].limits.max_per_day") in found
    assert ("extra", "inputs/extra.txt") in found
    assert ("slug", "--slug") in found  # "ntire" is taken
    message = str(refused.value)
    assert "../../evil.png" in message and "$.phases[0].kind: must be one of" in message
    assert database_counts() == before
    assert stored_files(storage) == files_before


def test_a_bundle_whose_files_do_not_match_their_checksums_is_refused(edition_2025, organizer, tmp_path):
    export(edition_2025, tmp_path / "good.zip")
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(tmp_path / "good.zip") as good, zipfile.ZipFile(forged, "w") as out:
        for name in good.namelist():
            data = good.read(name)
            out.writestr(name, data + b"tampered" if name.startswith("baselines/") else data)
    before = database_counts()
    with pytest.raises(bundles.BundleInvalid) as refused:
        services.import_bundle(forged, slug="forged", start=START, user=organizer)
    assert {p.code for p in refused.value.problems} == {"checksum"}
    assert database_counts() == before


def test_the_schema_validator_knows_every_keyword_the_schema_uses_and_refuses_bools_as_numbers():
    schema = bundles.manifest_schema()
    used: set[str] = set()

    def walk(node: dict) -> None:  # every subschema, wherever it sits
        used.update(node)
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for child in value.values():
                    walk(child)
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                walk(value)
            elif key == "anyOf":
                for child in value:
                    walk(child)

    walk(schema)
    assert used - bundles._ANNOTATIONS <= bundles._KEYWORDS, used - bundles._ANNOTATIONS - bundles._KEYWORDS
    assert {"$ref", "anyOf", "exclusiveMinimum", "pattern", "additionalProperties"} <= used
    problems = bundles.schema_problems({"n": True}, {"type": "object", "properties": {"n": {"type": "integer"}}})
    assert [(p.path, p.message) for p in problems] == [("$.n", "must be of type integer, not boolean")]
    with pytest.raises(ValueError, match="not supported"):
        bundles.schema_problems(1, {"multipleOf": 2})
    assert schema["properties"]["schema_version"] == {"const": bundles.SCHEMA_VERSION}


def test_new_edition_copies_2025_into_2026_with_the_2026_profiles(edition_2025, organizer, storage):
    profiles = {"dev": "ntire2026-dev", "test": "ntire2026-no-qalign"}
    done = services.new_edition(edition_2025, slug="ntire-2026", start=START, user=organizer,
                                title="NTIRE 2026 Face Restoration", profiles=profiles, enqueue=False)
    dev, test = done.challenge.phases.order_by("order")
    assert (dev.scoring_profile, test.scoring_profile) == ("ntire2026-dev", "ntire2026-no-qalign")
    for phase in (dev, test):
        assert phase.profile_snapshot["identity_thresholds"]["Wider-Test"] == 0.2
        assert dict(phase.datasets.values_list("name", "identity_threshold")) == {"CelebA": 0.5, "Wider-Test": 0.2}
    assert test.shown_metrics == ["clipiqa", "fid"]
    assert done.challenge.title == "NTIRE 2026 Face Restoration"
    assert set(done.challenge.teams.values_list("name", flat=True)) == {"Unsharp baseline"}
    # The 2025 edition is untouched.
    assert edition_2025.phases.get(slug="dev").profile_snapshot["identity_thresholds"]["Wider-Test"] == 0.3


def test_the_challenge_command_exports_and_imports(edition_2025, organizer, storage, tmp_path):
    out = io.StringIO()
    call_command("challenge", "export", "ntire", str(tmp_path / "b.zip"), stdout=out)
    assert "exported ntire: 2 phase(s), 4 input image(s), 2 baseline(s)" in out.getvalue()
    out = io.StringIO()
    call_command("challenge", "import", str(tmp_path / "b.zip"), "--slug", "ntire-2026", "--start", "2026-03-02",
                 "--organizer", organizer.username, "--profile", "ntire2026-no-qalign", "--no-score", stdout=out)
    assert "imported ntire-2026" in out.getvalue() and "profile ntire2026-no-qalign" in out.getvalue()
    copy = Challenge.objects.get(slug="ntire-2026")
    assert copy.phases.get(slug="dev").opens_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert {p.scoring_profile for p in copy.phases.all()} == {"ntire2026-no-qalign"}
    with pytest.raises(CommandError, match="--slug: a challenge with the slug 'ntire-2026' exists already"):
        call_command("challenge", "import", str(tmp_path / "b.zip"), "--slug", "ntire-2026", "--start",
                     "2026-03-02", "--organizer", organizer.username)
    assert timezone.is_aware(bundles.parse_start("2026-03-02T10:00:00+02:00"))


# --------------------------------------------------------------------------- the organizer pages


@pytest.fixture
def staff_client(organizer, client):
    organizer.is_staff = True
    organizer.save(update_fields=["is_staff"])
    client.force_login(organizer)
    return client


def test_an_organizer_downloads_the_bundle_and_creates_a_challenge_from_it(edition_2025, staff_client, make_user,
                                                                          client, storage, tmp_path):
    response = staff_client.get(reverse("organizers:bundle", args=["ntire"]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="ntire-bundle.zip"'
    bundle = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        manifest = json.loads(archive.read(bundles.MANIFEST))
    assert manifest["challenge"]["slug"] == "ntire" and len(manifest["phases"]) == 2

    page = staff_client.post(reverse("organizers:bundle-import"), {
        "bundle": SimpleUploadedFile("ntire-bundle.zip", bundle, content_type="application/zip"),
        "slug": "from-bundle", "title": "", "start": "2026-05-01T08:00"})
    assert page.status_code == 302 and page["Location"] == reverse("organizers:challenge", args=["from-bundle"])
    copy = Challenge.objects.get(slug="from-bundle")
    assert copy.title == edition_2025.title and copy.phases.get(slug="dev").opens_at == datetime(
        2026, 5, 1, 8, tzinfo=UTC)


def test_the_upload_page_lists_every_problem_of_a_broken_bundle_and_creates_nothing(edition_2025, staff_client,
                                                                                  tmp_path):
    export(edition_2025, tmp_path / "good.zip")
    with zipfile.ZipFile(tmp_path / "good.zip") as good:
        manifest = json.loads(good.read(bundles.MANIFEST))
    manifest["phases"][0]["datasets"][0]["identity_threshold"] = "high"
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr(bundles.MANIFEST, json.dumps(manifest))
        archive.writestr("/etc/passwd", b"x")
    before = database_counts()
    page = staff_client.post(reverse("organizers:bundle-import"), {
        "bundle": SimpleUploadedFile("b.zip", broken.getvalue()), "slug": "broken", "start": "2026-05-01T08:00"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="bundle-problems"' in html and "nothing was created" in html
    assert "$.phases[0].datasets[0].identity_threshold: must be of type number, not string" in html
    assert "/etc/passwd" in html and "inputs/" in html  # the hostile name, and the inputs it lacks
    assert database_counts() == before


def test_new_edition_in_two_clicks_offers_next_years_slug_title_and_profiles(edition_2025, staff_client,
                                                                             make_user, client):
    url = reverse("organizers:new-edition", args=["ntire"])
    form = staff_client.get(url).context["form"]
    assert form.initial["title"] == "NTIRE 2026 Face Restoration"
    assert (form.initial["profile_dev"], form.initial["profile_test"]) == ("ntire2026-dev", "ntire2026-no-qalign")
    data = {key: form.initial[key] for key in ("title", "profile_dev", "profile_test")}
    page = staff_client.post(url, {**data, "slug": "ntire-2026", "start": "2026-02-01T00:00"})
    assert page.status_code == 302
    dev = Phase.objects.get(challenge__slug="ntire-2026", slug="dev")
    assert dev.scoring_profile == "ntire2026-dev" and dev.profile_snapshot["identity_thresholds"]["Wider-Test"] == 0.2
    client.force_login(make_user("participant"))
    assert client.get(url).status_code == 403
    assert client.get(reverse("organizers:bundle", args=["ntire"])).status_code == 403
    assert client.get(reverse("organizers:bundle-import")).status_code == 403


def test_an_import_that_fails_while_writing_leaves_no_row_and_no_file(edition_2025, organizer, settings, tmp_path):
    """All or nothing when the database refuses a row late (here a real PostgreSQL trigger on the baseline's
    submission, after the input files were written): the transaction is rolled back and the files removed."""
    export(edition_2025, tmp_path / "good.zip")
    settings.MEDIA_ROOT = str(tmp_path / "fresh-media")  # a storage without the inputs: the import writes them
    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION refuse_row() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused for the"
                       " test'; END $$ LANGUAGE plpgsql")
        cursor.execute("CREATE TRIGGER refuse BEFORE INSERT ON submissions_submission FOR EACH ROW"
                       " EXECUTE FUNCTION refuse_row()")
    before = database_counts()
    with pytest.raises(DatabaseError, match="refused for the test"):
        services.import_bundle(tmp_path / "good.zip", slug="half-done", start=START, user=organizer,
                               enqueue=False)
    assert database_counts() == before
    assert not Challenge.objects.filter(slug="half-done").exists()
    media = tmp_path / "fresh-media"
    assert not [p for p in media.rglob("*") if p.is_file()]  # the two input files it wrote are gone


def test_pages_and_the_registration_mode_travel_registrations_do_not(edition_2025, organizer, tmp_path):
    from competitions.models import ChallengePage, Registration
    from competitions.services import save_page

    edition_2025.registration_mode = Challenge.RegistrationMode.APPROVAL
    edition_2025.save()
    save_page(challenge=edition_2025, kind="overview", body="# Restore faces")
    save_page(challenge=edition_2025, kind="terms", body="First terms.")
    save_page(challenge=edition_2025, kind="terms", body="Second terms.")  # version 2
    save_page(challenge=edition_2025, kind="extra", title="FAQ", order=5, body="Ask.")
    assert Registration.objects.filter(challenge=edition_2025).exists()  # the Alpha team's members
    done = services.new_edition(edition_2025, slug="ntire-2026", start=START, user=organizer, enqueue=False)
    copy = done.challenge
    assert copy.registration_mode == "approval"
    pages = list(copy.pages.order_by("order").values_list("kind", "slug", "title", "body", "version"))
    assert pages == [("overview", "overview", "Overview", "# Restore faces", 1), ("extra", "faq", "FAQ", "Ask.", 1),
                     ("terms", "terms", "Terms", "Second terms.", 1)]
    assert not Registration.objects.filter(challenge=copy).exists()
    assert ChallengePage.objects.get(challenge=edition_2025, kind="terms").version == 2  # untouched


def test_a_bundle_with_two_terms_pages_is_refused(edition_2025, organizer, tmp_path):
    terms = {"kind": "terms", "slug": "terms", "title": "Terms", "order": 30, "body": "x"}
    bad = exported_with(edition_2025, tmp_path, pages=[terms, {**terms, "slug": "terms-2"}, {**terms, "kind": "wiki"}],
                        registration_mode="invite-only")
    before = database_counts()
    with pytest.raises(bundles.BundleInvalid) as refused:
        services.import_bundle(bad, slug="ntire-pages", start=START, user=organizer)
    found = {(p.code, p.path) for p in refused.value.problems}
    assert ("duplicate", "$.challenge.pages[1].kind") in found
    assert ("schema", "$.challenge.pages[2].kind") in found
    assert ("schema", "$.challenge.registration_mode") in found
    assert database_counts() == before


def test_a_bundle_whose_pages_would_share_an_address_is_refused_before_anything_is_written(edition_2025, organizer,
                                                                                            tmp_path):
    # A Terms page always lives at "terms", whatever slug the manifest writes for it: an extra page written at
    # "terms" would collide with it when saved, so the bundle's check refuses it with the rest.
    bad = exported_with(edition_2025, tmp_path, pages=[
        {"kind": "terms", "slug": "rules", "title": "Terms", "order": 30, "body": "x"},
        {"kind": "extra", "slug": "terms", "title": "More terms", "order": 40, "body": "y"},
    ])
    before = database_counts()
    with pytest.raises(bundles.BundleInvalid) as refused:
        services.import_bundle(bad, slug="ntire-pages", start=START, user=organizer)
    found = {(p.code, p.path, p.message) for p in refused.value.problems}
    assert ("duplicate", "$.challenge.pages[1].slug", "page slug 'terms' appears twice") in found
    assert database_counts() == before
