"""Fixtures and factories for the platform tests.

Everything here calls the real services: challenges and phases through
``competitions.services``, teams through ``teams.services``, uploads through
``submissions.services.create_submission``. Input sets are tiny generated 64x64 images
(one per dataset) so a real scoring run costs seconds; the media files and the worker's
scratch space live in the test's own temporary folder.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from competitions.models import Challenge, Phase
from competitions.services import create_challenge, create_phase, load_input_set
from scoring.inputs import Landmarks, write_landmarks
from scoring.results import DatasetResult, ImageResult, ScoreReport
from submissions.models import DatasetScore, Submission, SubmissionResult
from teams.models import Team
from tests.support.archives import zip_folder

PASSWORD = "a-Long-passw0rd!"
IMAGE_SIZE = (64, 64)
# One input per dataset: two datasets of the NTIRE set (both have identity thresholds).
INPUT_LAYOUT = {"CelebA": "celeba_0001", "Wider-Test": "wider_0001"}
# Five landmarks (eyes, nose, mouth corners) placed on the 64x64 image.
LANDMARK_POINTS = ((22.0, 26.0), (42.0, 26.0), (32.0, 36.0), (24.0, 46.0), (40.0, 46.0))
DEV_PROFILE = "ntire2025-dev"
NTIRE_DATASETS = ["CelebA", "CelebChild-Test", "LFW-Test", "WebPhoto-Test", "Wider-Test"]


def noise_png(path: Path, size: tuple[int, int] = IMAGE_SIZE, seed: int = 0) -> Path:
    rng = random.Random(seed)
    raw = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", size, raw).save(path, format="PNG")
    return path


@pytest.fixture(scope="session")
def input_folder(tmp_path_factory) -> tuple[Path, Path]:
    """``inputs/<Dataset>/<stem>.png`` (64x64 noise) and the landmarks CSV, made once a session."""
    root = tmp_path_factory.mktemp("input-set")
    inputs = root / "inputs"
    rows = []
    for seed, (dataset, stem) in enumerate(INPUT_LAYOUT.items()):
        noise_png(inputs / dataset / f"{stem}.png", seed=100 + seed)
        rows.append(Landmarks(stem=stem, dataset=dataset, box=(8.0, 8.0, 56.0, 56.0), points=LANDMARK_POINTS))
    landmarks = root / "landmarks.csv"
    write_landmarks(landmarks, rows)
    return inputs, landmarks


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests create many users; the production hasher is slow by design."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """The login/signup/upload rate limits count in the cache: each test starts with none used."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def storage(settings, tmp_path) -> Path:
    """Media files and the worker's scratch space in this test's own folder."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.FR_SCRATCH_DIR = tmp_path / "scratch"
    return tmp_path


@pytest.fixture
def scoring_settings(settings, weights_dir, storage):
    """The pipeline scores in-process with the test weights, on the CPU."""
    settings.FR_WEIGHTS_DIR = str(weights_dir)
    settings.FR_SCORING_DEVICE = "cpu"
    return settings


def take_part(user, challenge: Challenge) -> None:
    """Register ``user`` for ``challenge`` through the service (current terms accepted), approved; idempotent."""
    from competitions.models import Registration
    from competitions.permissions import current_terms_version
    from competitions.services import decide_registrations, register

    registration = Registration.objects.filter(user=user, challenge=challenge).first()
    if registration is None:
        registration = register(user=user, challenge=challenge, terms_version=current_terms_version(challenge),
                                full_name=f"{user.username.title()} Tester", affiliation="Test University")
    if registration.status != Registration.Status.APPROVED:
        decide_registrations(challenge=challenge, registration_ids=[registration.pk], approve=True, by_user=None)


@pytest.fixture
def make_user(django_user_model) -> Callable[..., Any]:
    """``make_user("bob")``: a user registered (and approved) in every challenge that exists when it is
    made, so that tests of teams and submissions start from a participant; ``registered=False``: a newcomer."""
    def make(username: str, *, registered: bool = True, **fields):
        fields.setdefault("email", f"{username}@example.org")
        user = django_user_model.objects.create_user(username=username, password=PASSWORD, **fields)
        if registered:
            for challenge in Challenge.objects.all():
                take_part(user, challenge)
        return user

    return make


@pytest.fixture
def organizer(make_user):
    return make_user("orga")


@pytest.fixture
def challenge(db, organizer) -> Challenge:
    return create_challenge(slug="ntire", title="NTIRE 2025 Face Restoration", max_team_size=3,
                            organizers=[organizer])


@pytest.fixture
def phase(challenge, storage) -> Phase:
    return create_phase(challenge=challenge, slug="dev", name="Development", scoring_profile=DEV_PROFILE,
                        opens_at=timezone.now() - timedelta(days=1), max_running=5)


@pytest.fixture
def loaded_phase(phase, input_folder) -> Phase:
    inputs, landmarks = input_folder
    assert load_input_set(phase, inputs, landmarks) == len(INPUT_LAYOUT)
    return phase


@pytest.fixture
def make_team(challenge, make_user) -> Callable[..., Team]:
    """``make_team("Alpha")``: a team created by a new user ``alpha`` (its owner); ``members``
    are further usernames, each joining through an invitation link."""
    from teams import services

    def make(name: str, *, owner=None, members: Iterable[str] = (), in_challenge: Challenge | None = None) -> Team:
        target = in_challenge or challenge
        owner = owner or make_user(name.lower().replace(" ", "-"))
        take_part(owner, target)
        team = services.create_team(challenge=target, name=name, user=owner)
        for username in members:
            link = services.invite(team=team, by_user=owner)
            member = make_user(username)
            take_part(member, target)
            services.join(token=link.token, user=member)
        return team

    return make


def upload_file(path: Path, name: str = "restored.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/zip")


@pytest.fixture
def make_archive(input_folder, tmp_path) -> Callable[..., Path]:
    """A zip of the inputs themselves (a "restoration" that passes the identity test);
    ``skip``/``extra``/``replace`` as in ``tests.support.archives.zip_folder``."""
    counter = [0]

    def make(**changes) -> Path:
        counter[0] += 1
        return zip_folder(input_folder[0], tmp_path / f"archive-{counter[0]}.zip", **changes)

    return make


@pytest.fixture
def submit(loaded_phase, make_archive) -> Callable[..., Submission]:
    """Upload through ``create_submission``; by default nothing is sent to the broker."""
    from submissions.services import create_submission

    def do(team: Team, *, user=None, archive: Path | None = None, phase: Phase | None = None,
           enqueue: bool = False, description: str = "") -> Submission:
        return create_submission(
            phase=phase or loaded_phase, team=team, user=user or team.created_by,
            upload=upload_file(archive or make_archive()), description=description, enqueue=enqueue,
        )

    return do


def score_report(total: float = 0.5, failed: int = 0) -> ScoreReport:
    """A scoring run's report over the generated input set, as ``score_restored`` returns it."""
    metrics = {"clipiqa": total - 0.1, "musiq": 10.0}
    images = [ImageResult(dataset, stem, dict(metrics), 0.99, 0.5) for dataset, stem in INPUT_LAYOUT.items()]
    return ScoreReport(
        profile={"name": DEV_PROFILE, "max_failed_images": 10}, images=images,
        datasets=[DatasetResult(dataset, 1, dict(metrics), 0.99, 0) for dataset in INPUT_LAYOUT],
        overall=metrics, id_similarity=0.99, failed_count=failed, terms={"clipiqa": total - 0.1, "musiq": 0.1},
        total=total, valid=failed <= 10, weights={"RN50.pt": "0" * 64}, official_weights=False,
        versions={"scoring": "test"}, device="cpu",
    )


@pytest.fixture
def make_scored(phase) -> Callable[..., Submission]:
    """A submission with its result rows written directly (no scoring run), for leaderboard tests.

    ``datasets`` maps dataset name -> total-like value for its metrics; ``at`` sets created_at.
    """

    def make(team: Team, total: float, *, failed: int = 0, state: str = Submission.State.SCORED,
             at: datetime | None = None, datasets: Iterable[str] = ("CelebA",), selected: bool = False,
             official: bool = True, for_phase: Phase | None = None, with_result: bool = True) -> Submission:
        target = for_phase or phase
        submission = Submission.objects.create(
            phase=target, team=team, submitted_by=team.created_by, archive=f"submissions/{team.pk}.zip",
            archive_size=1, state=state, is_selected=selected,
        )
        if at is not None:
            Submission.objects.filter(pk=submission.pk).update(created_at=at)
            submission.refresh_from_db()
        if not with_result:
            return submission
        max_failed = int(target.profile_snapshot.get("max_failed_images", 10))
        metrics = {"clipiqa": total / 2, "musiq": total * 50}
        result = SubmissionResult.objects.create(
            submission=submission, total=total, failed_count=failed, valid=failed <= max_failed,
            id_similarity=0.9, metrics=metrics, terms={"clipiqa": total / 2, "musiq": total / 2},
            profile=target.profile_snapshot, weights={}, official_weights=official, versions={}, device="cpu",
        )
        DatasetScore.objects.bulk_create(
            DatasetScore(result=result, dataset=name, image_count=1, metrics=metrics, id_similarity=0.9,
                         failed_count=0)
            for name in datasets
        )
        return submission

    return make


@pytest.fixture
def scoring_queue():
    """Read (and remove) the messages waiting in the broker's ``scoring`` queue.

    Drained before the test so only its own messages are seen; returns a function giving
    ``[(task name, args), ...]`` of the messages sent since, for the given submission ids
    only (the suite's broker may be shared with another run of it).
    """
    from frplatform.celery import app

    def drain(*submission_ids: int) -> list[tuple[str, list]]:
        found = []
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            channel.queue_declare(queue="scoring", durable=True, auto_delete=False, passive=False)
            while (message := channel.basic_get("scoring", no_ack=True)) is not None:
                args, _kwargs, _embed = message.decode()
                if not submission_ids or (args and args[0] in submission_ids):
                    found.append((message.headers.get("task"), list(args)))
        return found

    drain()
    yield drain
    drain()
