"""The organizer pages: challenges and phases from the site, input sets (with a CSV, or RetinaFace), the queue,
verification, exports and e-mail. Every page is refused to participants and anonymous users.

Real services and the real pipeline throughout; the face detector runs with its test weights (random, and
deterministically finding no face), so the no-face path is what an upload without a CSV meets here.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from competitions.models import Challenge, InputImage, Phase
from competitions.services import create_phase
from leaderboard.selectors import phase_leaderboard
from organizers import exports, services
from organizers.models import InputSetJob
from organizers.selectors import score_report_of
from scoring.inputs import InputImage as ScoringInput
from scoring.inputs import Landmarks, read_landmarks, scan_inputs, write_landmarks
from scoring.report_csv import TOTAL_HEADER, write_images_csv, write_total_csv
from submissions import pipeline, transitions
from submissions.models import Submission, SubmissionResult
from teams.models import Membership, Team
from tests.platform.conftest import INPUT_LAYOUT, LANDMARK_POINTS, score_report, upload_file

State = Submission.State
EVAL_TOTAL_HEADER = "Dataset,NIQE,CLIP_IQA,MANIQA,MUSIQ,QALIGN,FID,ID_Sim,low_ID_Sim,Total"
RELPATHS = [f"{dataset}/{stem}.png" for dataset, stem in INPUT_LAYOUT.items()]


# --------------------------------------------------------------------------- helpers


def zip_inputs(folder: Path, target: Path, prefix: str = "", extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for png in sorted(folder.glob("*/*.png")):
            archive.write(png, f"{prefix}{png.parent.name}/{png.name}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


def force_state(submission: Submission, state: str, **fields) -> None:
    """Test setup only: put a submission in a state without going through the state machine."""
    Submission.objects.filter(pk=submission.pk).update(state=state, **fields)


def scored_for_real_rows(submission: Submission, phase: Phase, total: float = 0.5):
    """Through the state machine to "scoring", then the pipeline's own store_result (all result rows)."""
    assert transitions.transition(submission.pk, State.VALIDATING, "v")
    assert transitions.transition(submission.pk, State.SCORING, "s")
    report = score_report(total)
    report.profile = dict(phase.profile_snapshot)
    assert pipeline.store_result(submission.pk, report, 1.0) == State.SCORED
    return report


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def detector_settings(settings, landmark_weights):
    settings.FR_WEIGHTS_DIR = str(landmark_weights)
    settings.FR_SCORING_DEVICE = "cpu"
    return settings


@pytest.fixture
def org(client, organizer) -> Client:
    client.force_login(organizer)
    return client


@pytest.fixture
def hidden_test_phase(challenge, storage) -> Phase:
    return create_phase(challenge=challenge, slug="test", name="Test", scoring_profile="ntire2025-dev",
                        kind=Phase.Kind.TEST, visibility=Phase.Visibility.HIDDEN,
                        opens_at=timezone.now() - timedelta(days=1))


# --------------------------------------------------------------------------- permissions


@pytest.fixture
def world(loaded_phase, make_team, make_scored, submit):
    """A phase with an input set, a participant team with a scored and a waiting submission."""
    alpha = make_team("Alpha")
    scored = make_scored(alpha, 0.7)
    waiting = submit(alpha)
    return {"phase": loaded_phase, "team": alpha, "scored": scored, "waiting": waiting,
            "participant": alpha.created_by}


def organizer_routes(world) -> list[tuple[str, str]]:
    phase, c = world["phase"], world["phase"].challenge.slug
    p = [c, phase.slug]
    scored, waiting, team = world["scored"].pk, world["waiting"].pk, world["team"].pk
    return [
        ("get", reverse("organizers:dashboard")),
        ("get", reverse("organizers:challenge-create")),
        ("post", reverse("organizers:challenge-create")),
        ("get", reverse("organizers:bundle-import")),
        ("post", reverse("organizers:bundle-import")),
        ("get", reverse("organizers:challenge", args=[c])),
        ("post", reverse("organizers:challenge", args=[c])),
        ("get", reverse("organizers:bundle", args=[c])),
        ("get", reverse("organizers:new-edition", args=[c])),
        ("post", reverse("organizers:new-edition", args=[c])),
        ("get", reverse("organizers:phase-create", args=[c])),
        ("post", reverse("organizers:phase-create", args=[c])),
        ("get", reverse("organizers:queue", args=[c])),
        ("get", reverse("organizers:phase", args=p)),
        ("get", reverse("organizers:phase-edit", args=p)),
        ("post", reverse("organizers:phase-edit", args=p)),
        ("post", reverse("organizers:phase-publish", args=p)),
        ("post", reverse("organizers:input-set", args=p)),
        ("post", reverse("organizers:phase-rerun", args=p)),
        ("post", reverse("organizers:baseline", args=p)),
        ("get", reverse("organizers:email", args=p)),
        ("post", reverse("organizers:email", args=p)),
        ("get", reverse("organizers:results-zip", args=p)),
        ("get", reverse("organizers:archives-zip", args=p)),
        ("post", reverse("organizers:submission-cancel", args=[waiting])),
        ("post", reverse("organizers:submission-rerun", args=[scored])),
        ("post", reverse("organizers:submission-verify", args=[scored])),
        ("get", reverse("organizers:submission-factsheet", args=[scored])),
        ("post", reverse("organizers:team-disqualify", args=[team])),
    ]


def database_state() -> dict:
    return {
        "submissions": list(Submission.objects.order_by("pk").values_list("pk", "state", "verified")),
        "teams": list(Team.objects.order_by("pk").values_list("pk", "name", "disqualified", "is_baseline")),
        "phases": list(Phase.objects.order_by("pk").values_list("pk", "name", "published", "max_per_day")),
        "challenges": list(Challenge.objects.order_by("pk").values_list("pk", "title")),
        "inputs": InputImage.objects.count(),
        "results": SubmissionResult.objects.count(),
    }


@pytest.mark.parametrize("who", ["anonymous", "participant"])
def test_every_organizer_page_and_action_is_refused_to_others(client, world, who, django_capture_on_commit_callbacks):
    if who == "participant":
        client.force_login(world["participant"])
    before = database_state()
    posted = {"published": "1", "disqualified": "1", "verified": "1", "subject": "Hi", "body": "spam",
              "slug": "x", "title": "X", "name": "X"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for method, url in organizer_routes(world):
            response = getattr(client, method)(url, posted if method == "post" else None)
            assert response.status_code in (403, 404), (who, method, url, response.status_code)
    assert database_state() == before
    assert callbacks == [] and mail.outbox == []


def test_organizer_gets_every_page(org, world):
    staff_only = ("/organize/new/", "/organize/import/", reverse("organizers:new-edition", args=["ntire"]))
    for method, url in organizer_routes(world):
        if method == "get" and "factsheet" not in url and url not in staff_only:
            response = org.get(url)
            assert response.status_code == 200, (url, response.status_code)
    # Creating challenges (from scratch, from a bundle, as a new edition) is for staff; the challenge's own
    # organizer may not.
    for url in staff_only:
        assert org.get(url).status_code == 403, url


def test_a_post_without_the_csrf_token_is_refused(organizer, hidden_test_phase):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(organizer)
    url = reverse("organizers:phase-publish", args=[hidden_test_phase.challenge.slug, hidden_test_phase.slug])
    assert browser.post(url, {"published": "1"}).status_code == 403
    page = browser.get(reverse("organizers:phase", args=[hidden_test_phase.challenge.slug, hidden_test_phase.slug]))
    token = page.cookies["csrftoken"].value
    assert browser.post(url, {"published": "1", "csrfmiddlewaretoken": token}).status_code == 302
    hidden_test_phase.refresh_from_db()
    assert hidden_test_phase.published


def test_actions_refuse_get(org, world):
    phase = world["phase"]
    assert org.get(reverse("organizers:phase-publish", args=[phase.challenge.slug, phase.slug])).status_code == 405
    assert org.get(reverse("organizers:submission-cancel", args=[world["waiting"].pk])).status_code == 405
    assert org.get(reverse("organizers:team-disqualify", args=[world["team"].pk])).status_code == 405


def test_organizers_of_another_challenge_are_refused(client, world, make_user):
    from competitions.services import create_challenge

    other = make_user("other-orga")
    create_challenge(slug="other", title="Other", organizers=[other])
    client.force_login(other)
    for method, url in organizer_routes(world):
        if "dashboard" in url or url in ("/organize/", "/organize/new/"):
            continue
        assert getattr(client, method)(url).status_code in (403, 404), url


# --------------------------------------------------------------------------- challenges and phases


def phase_post(**changes) -> dict:
    data = {
        "slug": "final", "name": "Final test", "kind": "test", "order": "2",
        "opens_at": "2030-01-01T00:00", "closes_at": "2030-02-01T12:30", "max_per_day": "3", "max_total": "9",
        "max_running": "1", "max_archive_mb": "512", "scoring_profile": "ntire2025-no-qalign",
        "shown_metrics": ["clipiqa", "fid"], "visibility": "hidden", "selection": "selected",
    }
    data.update(changes)
    return data


def test_staff_creates_a_challenge_and_its_phases_from_the_site(client, make_user):
    boss = make_user("boss", is_staff=True)
    client.force_login(boss)
    response = client.post(reverse("organizers:challenge-create"), {
        "slug": "fr2026", "title": "Face Restoration 2026", "description": "Restore faces.", "max_team_size": "4",
    })
    challenge = Challenge.objects.get(slug="fr2026")
    assert response.url == reverse("organizers:challenge", args=["fr2026"])
    assert (challenge.title, challenge.max_team_size) == ("Face Restoration 2026", 4)
    assert list(challenge.organizers.all()) == [boss]
    # The same slug again is refused by the form.
    again = client.post(reverse("organizers:challenge-create"), {"slug": "fr2026", "title": "T", "max_team_size": 2})
    assert again.status_code == 200 and "exists already" in again.content.decode()

    url = reverse("organizers:phase-create", args=["fr2026"])
    bad = client.post(url, phase_post(shown_metrics=["qalign"], closes_at="2029-01-01T00:00"))
    text = bad.content.decode()
    assert "Not computed by ntire2025-no-qalign: qalign" in text and "must close after it opens" in text
    assert not Phase.objects.exists()

    response = client.post(url, phase_post())
    phase = Phase.objects.get(challenge=challenge, slug="final")
    assert response.url == reverse("organizers:phase", args=["fr2026", "final"])
    assert (phase.kind, phase.max_per_day, phase.max_total, phase.max_running) == ("test", 3, 9, 1)
    assert phase.max_archive_bytes == 512 * 1024**2
    assert (phase.visibility, phase.published, phase.selection) == ("hidden", False, "selected")
    assert phase.shown_metrics == ["clipiqa", "fid"]
    assert phase.closes_at.isoformat() == "2030-02-01T12:30:00+00:00"
    assert phase.profile_snapshot["name"] == "ntire2025-no-qalign"
    assert {t["metric"] for t in phase.profile_snapshot["terms"]} == {"clipiqa", "maniqa", "musiq", "niqe", "fid"}
    assert client.post(url, phase_post()).status_code == 200  # the slug is taken now
    assert Phase.objects.count() == 1

    # Edit: limits, profile, shown metrics; the slug stays.
    edit = reverse("organizers:phase-edit", args=["fr2026", "final"])
    assert 'value="final"' in client.get(edit).content.decode()
    response = client.post(edit, phase_post(slug="renamed", max_per_day="5", scoring_profile="ntire2025-dev",
                                            shown_metrics=["musiq"], visibility="team", closes_at=""))
    assert response.status_code == 302
    phase.refresh_from_db()
    assert (phase.slug, phase.max_per_day, phase.visibility, phase.closes_at) == ("final", 5, "team", None)
    assert phase.scoring_profile == "ntire2025-dev" and phase.shown_metrics == ["musiq"]
    assert [t["metric"] for t in phase.profile_snapshot["terms"]] == ["clipiqa", "musiq"]

    # The challenge's settings, team size cap included.
    client.post(reverse("organizers:challenge", args=["fr2026"]),
                {"slug": "ignored", "title": "FR 2026", "description": "", "max_team_size": "2"})
    challenge.refresh_from_db()
    assert (challenge.slug, challenge.title, challenge.max_team_size) == ("fr2026", "FR 2026", 2)
    # The public challenge page links organizers to these pages, and nobody else.
    assert 'id="organize-link"' in client.get(reverse("challenge-detail", args=["fr2026"])).content.decode()
    client.force_login(make_user("participant"))
    assert 'id="organize-link"' not in client.get(reverse("challenge-detail", args=["fr2026"])).content.decode()


def test_publish_a_hidden_test_phase_once_its_entries_are_verified(client, org, hidden_test_phase, make_team,
                                                                   make_scored, organizer):
    phase = hidden_test_phase
    alpha = make_team("Alpha")
    entry = make_scored(alpha, 0.8, for_phase=phase)
    args = [phase.challenge.slug, phase.slug]
    csv_url = reverse("organizers:leaderboard-csv", args=args)

    org.post(reverse("organizers:phase-publish", args=args), {"published": "1"})
    phase.refresh_from_db()
    assert not phase.published  # one entry is not verified
    assert "not verified yet" in org.get(reverse("organizers:phase", args=args)).content.decode()

    org.post(reverse("organizers:submission-verify", args=[entry.pk]), {"verified": "1"})
    entry.refresh_from_db()
    assert entry.verified
    org.post(reverse("organizers:phase-publish", args=args), {"published": "1"})
    phase.refresh_from_db()
    assert phase.published and phase.scores_public
    client.force_login(alpha.created_by)
    assert [r[1] for r in read_csv(client.get(csv_url).content.decode())[1:]] == ["Alpha"]

    client.force_login(organizer)
    client.post(reverse("organizers:phase-publish", args=args), {"published": "0"})
    phase.refresh_from_db()
    assert not phase.published
    client.force_login(alpha.created_by)
    assert len(read_csv(client.get(csv_url).content.decode())) == 1  # the header alone

    # "publish with unverified entries" overrides the check; public phases have nothing to publish.
    client.force_login(organizer)
    entry.verified = False
    entry.save()
    client.post(reverse("organizers:phase-publish", args=args), {"published": "1", "allow_unverified": "1"})
    phase.refresh_from_db()
    assert phase.published
    response = client.post(reverse("organizers:phase-publish", args=["ntire", "dev"]),  # make_scored's phase
                           {"published": "1"}, follow=True)
    assert "Only a phase whose scores are hidden" in response.content.decode()


# --------------------------------------------------------------------------- input sets


def test_input_set_upload_with_csv_stores_every_image(org, phase, input_folder, tmp_path):
    inputs, landmarks = input_folder
    archive = zip_inputs(inputs, tmp_path / "inputs.zip", prefix="inputs/",  # a zipped folder is fine too
                         extra={"__MACOSX/._x": b"junk", "inputs/.DS_Store": b"junk"})
    url = reverse("organizers:input-set", args=[phase.challenge.slug, phase.slug])
    response = org.post(url, {"archive": upload_file(archive, "inputs.zip"),
                              "landmarks": upload_file(landmarks, "val_face.csv")})
    assert response.status_code == 302, response.content.decode()[-3000:]
    rows = list(InputImage.objects.filter(dataset__phase=phase).select_related("dataset"))
    assert sorted(r.relpath for r in rows) == sorted(RELPATHS)
    assert all(r.landmarks == [list(p) for p in LANDMARK_POINTS] and r.box == [8.0, 8.0, 56.0, 56.0] for r in rows)
    assert all((r.width, r.height) == (64, 64) and len(r.sha256) == 64 for r in rows)
    page = org.get(response.url).content.decode()
    assert "Input set stored: 2 images (2 landmarks from the CSV)" in page
    assert 'data-dataset="CelebA"' in page and 'data-dataset="Wider-Test"' in page


def stored_inputs() -> list[tuple[int, str]]:
    return list(InputImage.objects.order_by("pk").values_list("pk", "sha256"))


def test_input_set_without_csv_goes_to_retinaface_on_a_worker_and_lists_the_no_face_inputs(
    org, loaded_phase, input_folder, tmp_path, detector_settings,
):
    """Issue 12: no cap on the inputs to locate (FR_WEB_DETECT_MAX is gone); the request stores the upload in a job
    and a worker's task runs RetinaFace. (Was: refused past FR_WEB_DETECT_MAX, detection inside the request.)
    The task's service runs here in-process; tests/platform/test_input_set_jobs.py runs it on a real worker."""
    phase = loaded_phase
    before = stored_inputs()
    inputs, _ = input_folder
    archive = zip_inputs(inputs, tmp_path / "inputs.zip")
    url = reverse("organizers:input-set", args=[phase.challenge.slug, phase.slug])

    response = org.post(url, {"archive": upload_file(archive, "inputs.zip")})
    job = InputSetJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("organizers:input-set-job", args=[phase.challenge.slug, phase.slug, job.pk])
    assert (job.state, job.images, job.from_csv, job.to_locate) == ("queued", 2, 0, 2)
    assert default_storage.exists(job.archive.name)
    page = org.get(response.url).content.decode()
    assert 'data-state="queued"' in page and 'http-equiv="refresh"' in page
    assert stored_inputs() == before  # nothing yet

    # The test weights find no face: nothing stored, every input listed, the upload deleted.
    assert services.run_input_set_job(job.pk) == "failed"
    job.refresh_from_db()
    assert (job.done, sorted(job.no_face)) == (2, sorted(RELPATHS))
    assert not job.archive and not list((tmp_path / "media" / "input-set-jobs").glob("*"))
    page = org.get(response.url).content.decode()
    assert 'id="no-face"' in page and 'http-equiv="refresh"' not in page
    for relpath in RELPATHS:
        assert f"<li>{relpath}</li>" in page
    status = org.get(reverse("organizers:input-set-job-json", args=[phase.challenge.slug, phase.slug, job.pk])).json()
    assert status["state"] == "failed" and status["final"] and (status["done"], status["total"]) == (2, 2)
    assert stored_inputs() == before
    assert services.run_input_set_job(job.pk) == "failed"  # a task delivered again leaves a final job alone

    # A CSV for one input: only the other goes to RetinaFace, and still has no face.
    celeba, wider = INPUT_LAYOUT.items()
    partial = tmp_path / "partial.csv"
    write_landmarks(partial, [Landmarks(celeba[1], celeba[0], (8.0, 8.0, 56.0, 56.0), LANDMARK_POINTS)])
    response = org.post(url, {"archive": upload_file(archive, "inputs.zip"),
                              "landmarks": upload_file(partial, "partial.csv")})
    job = InputSetJob.objects.latest("pk")
    assert (job.from_csv, job.to_locate) == (1, 1)
    assert services.run_input_set_job(job.pk) == "failed"
    page = org.get(response.url).content.decode()
    assert f"<li>{wider[0]}/{wider[1]}.png</li>" in page and f"<li>{celeba[0]}/{celeba[1]}.png</li>" not in page
    assert stored_inputs() == before

    # With the rows for the no-face inputs the set is stored at once, in the request: nothing to locate.
    full = tmp_path / "full.csv"
    write_landmarks(full, [Landmarks(stem, dataset, (8.0, 8.0, 56.0, 56.0), LANDMARK_POINTS)
                           for dataset, stem in INPUT_LAYOUT.items()])
    response = org.post(url, {"archive": upload_file(archive, "inputs.zip"), "landmarks": upload_file(full, "f.csv")})
    assert response.status_code == 302 and response.url == reverse("organizers:phase", args=["ntire", "dev"])
    assert InputImage.objects.filter(dataset__phase=phase).count() == len(INPUT_LAYOUT)
    assert InputSetJob.objects.count() == 2


def test_an_input_set_job_whose_archive_turned_bad_stores_nothing(org, loaded_phase, input_folder, tmp_path,
                                                                   detector_settings):
    """The worker checks the stored archive again: one replaced in storage meanwhile fails the job, clearly."""
    before = stored_inputs()
    archive = zip_inputs(input_folder[0], tmp_path / "inputs.zip")
    org.post(reverse("organizers:input-set", args=["ntire", "dev"]), {"archive": upload_file(archive, "inputs.zip")})
    job = InputSetJob.objects.get()
    with default_storage.open(job.archive.name, "wb") as handle:
        handle.write(b"this is no zip")
    assert services.run_input_set_job(job.pk) == "failed"
    job.refresh_from_db()
    assert "not a readable zip archive" in job.error and job.done == 0
    assert stored_inputs() == before


def test_detect_landmarks_with_test_weights_finds_no_face(landmark_weights, input_folder):
    from scoring.landmarks import detect_landmarks, load_detector
    from scoring.weights import WeightsError

    images = scan_inputs(input_folder[0])
    found, missing = detect_landmarks(images, landmark_weights, "cpu")
    assert found == {} and missing == [i.stem for i in images]
    assert detect_landmarks([], landmark_weights, "cpu") == ({}, [])
    with pytest.raises(WeightsError, match="missing weight file detection_Resnet50_Final.pth"):
        load_detector(input_folder[0], "cpu")


def test_detect_landmarks_reads_a_found_face(landmark_weights, input_folder, tmp_path):
    """What detect_one makes of a detection: the most confident face, image pixel coordinates."""
    import numpy as np

    from scoring.landmarks import detect_one

    class OneFace:
        def detect_faces(self, image, conf_threshold, use_origin_size):
            assert image.shape == (64, 64, 3) and use_origin_size
            weak = [1, 1, 9, 9, 0.85, *range(10)]
            strong = [8, 9, 50, 52, 0.99, 20, 25, 42, 26, 31, 36, 24, 46, 40, 47]
            return np.array([weak, strong], dtype=np.float32)

    image = ScoringInput("CelebA", "celeba_0001", input_folder[0] / "CelebA" / "celeba_0001.png", 64, 64)
    found = detect_one(OneFace(), image)
    assert found == Landmarks("celeba_0001", "CelebA", (8.0, 9.0, 50.0, 52.0),
                              ((20.0, 25.0), (42.0, 26.0), (31.0, 36.0), (24.0, 46.0), (40.0, 47.0)))
    # Written and read back as the val_face.csv layout the input-set loader takes.
    path = tmp_path / "lm.csv"
    write_landmarks(path, [found])
    assert read_landmarks(path)["celeba_0001"] == found


# The messages are those of scoring.archive's naming policy, which participants' archives are read under too.
HOSTILE = {
    "traversal": ({"../evil/x.png": b"\x89PNG\r\n\x1a\n"}, "../evil/x.png contains"),
    "absolute": ({"/etc/x.png": b"\x89PNG\r\n\x1a\n"}, "/etc/x.png is an absolute path"),
    "nested": ({"CelebA/deep/x.png": b"\x89PNG\r\n\x1a\n"}, "CelebA/deep/x.png is not <Dataset>/<stem>.png"),
    "not_png": ({"CelebA/fake.png": b"GIF89a not a png"}, "CelebA/fake.png is not a PNG file"),
    "text": ({"notes.txt": b"hello"}, "notes.txt is not <Dataset>/<stem>.png"),
    "hidden": ({"CelebA/.x.png": b"\x89PNG\r\n\x1a\n"}, "CelebA/.x.png is not <Dataset>/<stem>.png"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_archives_are_refused_and_nothing_is_written(org, phase, input_folder, tmp_path, case):
    members, expected = HOSTILE[case]
    archive = zip_inputs(input_folder[0], tmp_path / "inputs.zip", extra=members)
    url = reverse("organizers:input-set", args=[phase.challenge.slug, phase.slug])
    page = org.post(url, {"archive": upload_file(archive), "landmarks": upload_file(input_folder[1])}).content.decode()
    assert expected.replace("<", "&lt;").replace(">", "&gt;") in page
    assert not InputImage.objects.exists()
    assert not (tmp_path / "evil").exists() and not Path("/etc/x.png").exists()
    assert not list((tmp_path / "scratch").glob("inputs-*"))  # the scratch folder is cleaned up


def test_symlinks_duplicates_and_non_zips_are_refused(org, phase, input_folder, tmp_path):
    url = reverse("organizers:input-set", args=[phase.challenge.slug, phase.slug])
    link = zip_inputs(input_folder[0], tmp_path / "link.zip")
    with zipfile.ZipFile(link, "a") as archive:
        info = zipfile.ZipInfo("CelebA/link.png")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
        archive.writestr("Wider-Test/WIDER_0001.png", b"\x89PNG\r\n\x1a\n")  # wider_0001.png again, but for case
    page = org.post(url, {"archive": upload_file(link), "landmarks": upload_file(input_folder[1])}).content.decode()
    assert "CelebA/link.png is a symbolic link" in page
    assert "Wider-Test/WIDER_0001.png clashes with Wider-Test/wider_0001.png" in page
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"this is no zip")
    page = org.post(url, {"archive": upload_file(not_zip)}).content.decode()
    assert "not a readable zip archive" in page
    assert not InputImage.objects.exists()


# --------------------------------------------------------------------------- the queue


def test_queue_page_counts_ages_and_running_workers(org, world, make_team, submit, make_scored):
    beta = make_team("Beta")
    running = submit(beta)
    assert transitions.transition(running.pk, State.VALIDATING, "taken", worker="gpu-box:4242")
    assert transitions.transition(running.pk, State.SCORING, "scoring", progress_total=2)
    Submission.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=75))
    old = timezone.now() - timedelta(hours=3, minutes=5)
    Submission.objects.filter(pk=world["waiting"].pk).update(created_at=old)
    failed = make_scored(beta, 0.1, state=State.FAILED, with_result=False)

    page = org.get(reverse("organizers:queue", args=[world["phase"].challenge.slug])).content.decode()
    assert "gpu-box:4242" in page and "1 min 15 s ago" in page
    assert 'id="oldest-age">3 h 5 min<' in page and f"submission {world['waiting'].pk}, Alpha" in page
    counts_row = page.split('data-phase="dev"')[1].split("</tr>")[0]
    # submitted, validating, scoring, scored, rejected, failed, cancelled, all
    assert [c.split("<")[0] for c in counts_row.split("<td>")[2:]] == ["1", "0", "1", "1", "0", "1", "0", "4"]
    assert f'data-submission="{failed.pk}"' in page
    filtered = org.get(reverse("organizers:queue", args=["ntire"]), {"state": "failed"}).content.decode()
    assert f'data-submission="{failed.pk}"' in filtered and f'data-submission="{running.pk}"' not in filtered


def test_cancel_and_rerun_one_submission(org, world, django_capture_on_commit_callbacks):
    waiting, scored = world["waiting"], world["scored"]
    queue_url = reverse("organizers:queue", args=["ntire"])
    response = org.post(reverse("organizers:submission-cancel", args=[waiting.pk]), {"next": queue_url + "?state="})
    assert response.url == queue_url + "?state="
    waiting.refresh_from_db()
    assert waiting.state == State.CANCELLED and not waiting.counts_toward_quota
    assert waiting.events.last().message == "Cancelled by orga."

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        org.post(reverse("organizers:submission-rerun", args=[scored.pk]), {"next": "https://evil.example/"})
    scored.refresh_from_db()
    assert scored.state == State.SUBMITTED and not SubmissionResult.objects.filter(submission=scored).exists()
    # The scoring task's enqueue, once; the board lost a result, so its rank-stability analysis is scheduled too.
    assert len([c for c in callbacks if "board_changed" not in c.__qualname__]) == 1
    assert len(callbacks) == 2
    # A cancelled submission cannot be re-run, and a second cancel changes nothing.
    response = org.post(reverse("organizers:submission-rerun", args=[waiting.pk]), follow=True)
    assert "cannot be re-run" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.state == State.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_rerun_all_requeues_scored_and_failed_submissions_and_they_score_again(
    org, scoring_settings, loaded_phase, make_team, submit, scoring_queue,
):
    """Committed for real: the re-queued runs reach the broker, and the worker's heartbeat thread (its own
    database connection) sees the runs it keeps alive: it beats every 0.6 s here, and a run it could not see
    would be taken for abandoned."""
    scoring_settings.FR_HEARTBEAT_TIMEOUT = 3
    alpha, beta = make_team("Alpha"), make_team("Beta")
    first = submit(alpha)
    assert pipeline.run_submission(first.pk) == State.SCORED
    old_total = first.result.total
    crashed = submit(beta)
    assert transitions.transition(crashed.pk, State.FAILED, "worker crashed")
    rejected, cancelled, waiting = submit(beta), submit(alpha), submit(alpha)
    assert transitions.transition(rejected.pk, State.VALIDATING, "v")
    assert transitions.transition(rejected.pk, State.REJECTED, "bad archive")
    assert transitions.transition(cancelled.pk, State.CANCELLED, "cancelled")

    url = reverse("organizers:phase-rerun", args=["ntire", "dev"])
    response = org.post(url, {"reason": "New weights."}, follow=True)
    assert "2 submissions of Development queued to be scored again" in response.content.decode()
    sent = scoring_queue(first.pk, crashed.pk, rejected.pk, cancelled.pk, waiting.pk)
    assert sorted(args[0] for _task, args in sent) == [first.pk, crashed.pk]  # one message per re-queued run
    states = dict(Submission.objects.values_list("pk", "state"))
    assert states == {first.pk: State.SUBMITTED, crashed.pk: State.SUBMITTED, rejected.pk: State.REJECTED,
                      cancelled.pk: State.CANCELLED, waiting.pk: State.SUBMITTED}
    assert "Re-run requested by orga. New weights." in [e.message for e in first.events.all()]
    assert not SubmissionResult.objects.exists()

    # What the worker then does with the re-queued runs.
    assert pipeline.run_submission(first.pk) == State.SCORED
    assert pipeline.run_submission(crashed.pk) == State.SCORED
    assert SubmissionResult.objects.get(submission=first).total == pytest.approx(old_total)


def test_disqualified_team_disappears_from_the_leaderboard_and_comes_back(org, client, world, make_team,
                                                                          make_scored):
    phase = world["phase"]
    beta = make_team("Beta")
    make_scored(beta, 0.9)
    csv_url = reverse("organizers:leaderboard-csv", args=["ntire", "dev"])
    assert [r[1] for r in read_csv(org.get(csv_url).content.decode())[1:]] == ["Beta", "Alpha"]

    org.post(reverse("organizers:team-disqualify", args=[beta.pk]), {"disqualified": "1"})
    beta.refresh_from_db()
    assert beta.disqualified
    assert [r.team for r in phase_leaderboard(phase).rows] == ["Alpha"]
    rows = read_csv(org.get(csv_url).content.decode())
    assert [(r[0], r[1]) for r in rows[1:]] == [("1", "Alpha")]
    assert "disqualified" in org.get(reverse("organizers:queue", args=["ntire"])).content.decode()

    org.post(reverse("organizers:team-disqualify", args=[beta.pk]), {"disqualified": "0"})
    assert [r.team for r in phase_leaderboard(phase).rows] == ["Beta", "Alpha"]


def test_baseline_row_is_a_baseline_team_owned_by_the_organizer(
    org, organizer, loaded_phase, make_archive, make_team, django_capture_on_commit_callbacks,
):
    url = reverse("organizers:baseline", args=["ntire", "dev"])
    # Phase dates do not stop organizers: the baseline is added after the phase closed.
    Phase.objects.filter(pk=loaded_phase.pk).update(closes_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = org.post(url, {"name": "CodeFormer baseline", "archive": upload_file(make_archive()),
                                  "description": "CodeFormer w=0.7"})
    assert response.status_code == 302
    team = Team.objects.get(name="CodeFormer baseline")
    assert (team.is_baseline, team.created_by, team.disqualified) == (True, organizer, False)
    assert not Membership.objects.filter(team=team).exists()  # the organizer keeps their one team per challenge
    [submission] = team.submissions.all()
    assert (submission.state, submission.submitted_by, submission.description) == (
        State.SUBMITTED, organizer, "CodeFormer w=0.7")
    assert len(callbacks) == 1
    scored_for_real_rows(submission, loaded_phase, 0.4)  # the worker's part is the same as for any submission
    [row] = phase_leaderboard(loaded_phase).rows
    assert (row.team, row.baseline) == ("CodeFormer baseline", True)
    csv_rows = read_csv(org.get(reverse("organizers:leaderboard-csv", args=["ntire", "dev"])).content.decode())
    assert csv_rows[1][1] == "CodeFormer baseline" and csv_rows[1][-1] == "1"

    # A participant's team name is not taken over.
    make_team("Alpha")
    page = org.post(url, {"name": "Alpha", "archive": upload_file(make_archive())}).content.decode()
    assert "A participating team is called" in page
    assert Submission.objects.count() == 1


# --------------------------------------------------------------------------- verification


def test_entries_show_factsheet_and_code_beside_the_scores(org, hidden_test_phase, make_team, make_scored):
    phase = hidden_test_phase
    alpha, beta = make_team("Alpha"), make_team("Beta")
    make_scored(alpha, 0.2, for_phase=phase, at=timezone.now() - timedelta(hours=1))
    final = make_scored(alpha, 0.6, for_phase=phase)
    final.factsheet.save("alpha.pdf", ContentFile(b"%PDF-1.4 factsheet"), save=False)
    final.code_url = "https://github.com/alpha/restorer"
    final.save()
    make_scored(beta, 0.4, for_phase=phase)

    page = org.get(reverse("organizers:phase", args=["ntire", "test"])).content.decode()
    entries = page.split('id="entries"')[1].split("</table>")[0]
    assert entries.index('data-team="Alpha"') < entries.index('data-team="Beta"')
    alpha_row = entries.split('data-team="Alpha"')[1].split("</tr>")[0]
    assert "0.6000" in alpha_row and "https://github.com/alpha/restorer" in alpha_row
    assert reverse("organizers:submission-factsheet", args=[final.pk]) in alpha_row
    assert "2 team entries are not verified yet" in page

    download = org.get(reverse("organizers:submission-factsheet", args=[final.pk]))
    assert body_of(download) == b"%PDF-1.4 factsheet"
    assert f"Alpha--{final.pk}-alpha" in download["Content-Disposition"]
    participant = Client()
    participant.force_login(alpha.created_by)
    assert participant.get(reverse("organizers:submission-factsheet", args=[final.pk])).status_code == 404

    org.post(reverse("organizers:submission-verify", args=[final.pk]), {"verified": "1"})
    final.refresh_from_db()
    assert final.verified
    assert "1 team entry is not verified yet" in org.get(reverse("organizers:phase", args=["ntire", "test"])
                                                         ).content.decode()


# --------------------------------------------------------------------------- exports


def test_leaderboard_csv_export_rows_and_hidden_scores(client, org, world, hidden_test_phase, make_team,
                                                       make_scored):
    beta = make_team("Beta")
    make_scored(beta, 0.9, failed=20)  # too many identity failures: listed, unranked
    rows = read_csv(client.get(reverse("organizers:leaderboard-csv", args=["ntire", "dev"])).content.decode())
    assert rows[0] == ["rank", "team", "submission", "submitted_at", "total", "CLIP-IQA", "MUSIQ", "id_similarity",
                       "failed_images", "id_valid", "official_weights", "baseline"]
    assert [(r[0], r[1], r[2], r[4], r[9]) for r in rows[1:]] == [
        ("1", "Alpha", str(world["scored"].pk), "0.7", "1"),
        ("", "Beta", str(Submission.objects.get(team=beta).pk), "0.9", "0"),
    ]
    assert float(rows[1][5]) == pytest.approx(0.35) and float(rows[1][6]) == pytest.approx(35.0)

    # A hidden phase: its scores stay out of the CSV for everyone but the organizers.
    make_scored(world["team"], 0.5, for_phase=hidden_test_phase)
    url = reverse("organizers:leaderboard-csv", args=["ntire", "test"])
    assert len(read_csv(org.get(url).content.decode())) == 2
    for viewer in (None, world["participant"]):
        other = Client()
        if viewer:
            other.force_login(viewer)
        text = other.get(url).content.decode()
        assert read_csv(text) == [rows[0]] and "Alpha" not in text and "0.5" not in text


def test_results_zip_has_eval_csv_pair_per_scored_submission(org, client, loaded_phase, make_team, submit,
                                                              tmp_path):
    alpha, beta = make_team("Alpha / Inc."), make_team("Beta")
    reports = {}
    for team, total in ((alpha, 0.5), (beta, 0.75)):
        submission = submit(team)
        reports[submission.pk] = (team, scored_for_real_rows(submission, loaded_phase, total))
    submit(beta)  # not scored: not exported

    response = org.get(reverse("organizers:results-zip", args=["ntire", "dev"]))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    bundle = zipfile.ZipFile(io.BytesIO(body_of(response)))
    expected_names = []
    for pk, (team, report) in reports.items():
        stem = f"{exports.safe_name(team.name)}--{pk}"
        expected_names += [f"{stem}_total.csv", f"{stem}.csv"]
        # Byte for byte what eval.py's writers make of the run's own report.
        write_total_csv(tmp_path / "expected_total.csv", report)
        write_images_csv(tmp_path / "expected.csv", report)
        assert bundle.read(f"{stem}_total.csv") == (tmp_path / "expected_total.csv").read_bytes()
        assert bundle.read(f"{stem}.csv") == (tmp_path / "expected.csv").read_bytes()
        total_rows = read_csv(bundle.read(f"{stem}_total.csv").decode())
        assert ",".join(total_rows[0]) == EVAL_TOTAL_HEADER == ",".join(TOTAL_HEADER)
        assert [r[0] for r in total_rows[1:]] == [*INPUT_LAYOUT, "All", "Weighted Score"]
        assert float(total_rows[-1][-1]) == report.total
        image_rows = read_csv(bundle.read(f"{stem}.csv").decode())
        assert image_rows[0] == ["Filename", "CLIP_IQA", "Dataset", "ID_Sim", "MUSIQ"]
        assert [r[0] for r in image_rows[1:]] == [f"{stem_}.png" for stem_ in INPUT_LAYOUT.values()]
    assert sorted(bundle.namelist()) == sorted(expected_names)
    assert sorted(expected_names)[0].startswith("Alpha_Inc--")

    client.force_login(alpha.created_by)
    assert client.get(reverse("organizers:results-zip", args=["ntire", "dev"])).status_code == 403


def test_score_report_of_rebuilds_the_stored_run(loaded_phase, make_team, submit):
    submission = submit(make_team("Alpha"))
    report = scored_for_real_rows(submission, loaded_phase, 0.6)
    rebuilt = score_report_of(SubmissionResult.objects.get(submission=submission))
    assert rebuilt.to_dict() == {**report.to_dict(), "timings": {}}


def test_archives_zip_streams_every_archive(org, loaded_phase, make_team, submit, make_archive):
    alpha, beta = make_team("Alpha"), make_team("Beta")
    archives = {}
    for team in (alpha, beta, alpha):
        path = make_archive()
        archives[submit(team, archive=path).pk] = (team, path.read_bytes())

    response = org.get(reverse("organizers:archives-zip", args=["ntire", "dev"]))
    assert response.streaming and response["Content-Type"] == "application/zip"
    chunks = list(response.streaming_content)
    assert len(chunks) > len(archives)  # produced piece by piece, not built whole first
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert bundle.testzip() is None
    for pk, (team, data) in archives.items():
        assert bundle.read(f"{team.name}--{pk}.zip") == data
    index = read_csv(bundle.read("submissions.csv").decode())
    assert [int(r[1]) for r in index[1:]] == sorted(archives)
    assert index[0][:4] == ["file", "submission", "team", "state"]


def test_archives_zip_notes_a_missing_archive(org, loaded_phase, make_team, submit, storage):
    submission = submit(make_team("Alpha"))
    Path(storage / "media" / submission.archive.name).unlink()
    response = org.get(reverse("organizers:archives-zip", args=["ntire", "dev"]))
    bundle = zipfile.ZipFile(io.BytesIO(body_of(response)))
    assert bundle.namelist() == ["submissions.csv"]
    [_header, row] = read_csv(bundle.read("submissions.csv").decode())
    assert row[0] == "" and row[-1].startswith("not in storage")


# --------------------------------------------------------------------------- e-mail


def test_email_reaches_every_member_of_teams_that_submitted(org, loaded_phase, make_team, submit, make_archive):
    alpha = make_team("Alpha", members=["alpha2"])
    beta = make_team("Beta")
    make_team("Gamma")  # no submission: not e-mailed
    submit(alpha)
    submit(beta)
    org.post(reverse("organizers:baseline", args=["ntire", "dev"]),
             {"name": "CodeFormer baseline", "archive": upload_file(make_archive())})
    url = reverse("organizers:email", args=["ntire", "dev"])
    page = org.get(url).content.decode()
    recipients = page.split('id="recipients"')[1]
    assert all(f"{u}@example.org" in recipients for u in ("alpha", "alpha2", "beta"))
    assert "gamma@" not in recipients and "orga@" not in recipients

    response = org.post(url, {"subject": "Test phase opens", "body": "Good luck."}, follow=True)
    assert "Message sent to 3 participants" in response.content.decode()
    assert sorted(m.to[0] for m in mail.outbox) == ["alpha2@example.org", "alpha@example.org", "beta@example.org"]
    assert all(len(m.to) == 1 and not m.cc and not m.bcc for m in mail.outbox)
    assert mail.outbox[0].subject == "[NTIRE 2025 Face Restoration] Test phase opens"
    assert mail.outbox[0].body == "Good luck." and mail.outbox[0].reply_to == ["orga@example.org"]


def test_email_needs_subject_and_body(org, loaded_phase, make_team, submit):
    submit(make_team("Alpha"))
    response = org.post(reverse("organizers:email", args=["ntire", "dev"]), {"subject": "", "body": ""})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert mail.outbox == []
