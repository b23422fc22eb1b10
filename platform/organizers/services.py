"""Writes of the organizer pages: challenges and phases, input sets, the queue, verification, e-mail.

Submission states change only through submissions.transitions (via submissions.services).
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from celery import current_app
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.utils import timezone

from competitions import services as competition_services
from competitions.data_services import request_phase_data
from competitions.models import Challenge, InputDataset, InputImage, Phase
from competitions.storage import remove_stored
from leaderboard.versions import board_changed
from organizers import bundles, selectors
from organizers.models import InputSetJob
from organizers.selectors import InputArchiveLimits, input_archive_limits
from scoring.archive.input_set import extract_input_set, problem_list
from scoring.inputs import InputImage as ScoringInput
from scoring.inputs import InputSetError, Landmarks, check_landmarks_cover, read_landmarks, scan_inputs, write_landmarks
from scoring.profile import get_profile
from scoring.weights import WeightsError
from submissions.models import Submission
from submissions.refusals import SubmissionRefused
from submissions.services import create_submission
from teams.models import Team, team_name_key
from teams.services import TeamError, clean_team_name

logger = logging.getLogger(__name__)


class OrganizerError(Exception):
    """Refused; the message is shown to the organizer as it is."""


# --------------------------------------------------------------------------- challenges and phases


def create_challenge(*, user, slug: str, title: str, description: str = "", max_team_size: int = 5,
                     registration_mode: str = Challenge.RegistrationMode.OPEN) -> Challenge:
    """A new challenge, organized by the user who creates it."""
    try:
        with transaction.atomic():
            return competition_services.create_challenge(
                slug=slug, title=title, description=description, max_team_size=max_team_size, organizers=[user],
                registration_mode=registration_mode)
    except IntegrityError:
        raise OrganizerError(f"A challenge with the slug {slug!r} exists already.") from None


def update_challenge(challenge: Challenge, *, title: str, description: str, max_team_size: int,
                     registration_mode: str | None = None, **_: Any) -> Challenge:
    challenge.title, challenge.description, challenge.max_team_size = title, description, max_team_size
    challenge.registration_mode = registration_mode or challenge.registration_mode
    challenge.save(update_fields=["title", "description", "max_team_size", "registration_mode"])
    return challenge


def create_phase(*, challenge: Challenge, slug: str, name: str, scoring_profile: str, **fields: Any) -> Phase:
    try:
        with transaction.atomic():
            return competition_services.create_phase(challenge=challenge, slug=slug, name=name,
                                                     scoring_profile=scoring_profile, **fields)
    except IntegrityError:
        raise OrganizerError(f"This challenge has a phase with the slug {slug!r} already.") from None


PHASE_EDITABLE = ("name", "kind", "order", "opens_at", "closes_at", "max_per_day", "max_total", "max_running",
                  "max_archive_bytes", "shown_metrics", "visibility", "selection")


def update_phase(phase: Phase, *, scoring_profile: str, **fields: Any) -> Phase:
    """Change a phase's settings. A new scoring profile is snapshotted again, keeping the identity thresholds
    the input set was loaded with; results already stored keep the profile they were scored with."""
    for name in PHASE_EDITABLE:
        if name in fields:
            setattr(phase, name, fields[name])
    changed = list(PHASE_EDITABLE)
    if scoring_profile != phase.scoring_profile:
        profile = get_profile(scoring_profile).to_dict()
        thresholds = phase.profile_snapshot.get("identity_thresholds")
        if thresholds:
            profile["identity_thresholds"] = {**profile["identity_thresholds"], **thresholds}
        phase.scoring_profile, phase.profile_snapshot = scoring_profile, profile
        changed += ["scoring_profile", "profile_snapshot"]
    phase.save(update_fields=changed)
    return phase


def set_published(phase: Phase, published: bool, *, allow_unverified: bool = False) -> Phase:
    """Publish (or withdraw) the scores of a hidden phase. A test phase is published only once every team's
    final entry is verified, unless the organizer says to go ahead anyway."""
    if phase.visibility != Phase.Visibility.HIDDEN:
        raise OrganizerError("Only a phase whose scores are hidden until published can be published or withdrawn.")
    if published and phase.kind == Phase.Kind.TEST and not allow_unverified:
        waiting = selectors.unverified_count(phase)
        if waiting:
            raise OrganizerError(
                f"{waiting} team entr{'y is' if waiting == 1 else 'ies are'} not verified yet. Verify them, or tick"
                " 'publish with unverified entries'.")
    Phase.objects.filter(pk=phase.pk).update(published=published)
    phase.published = published
    return phase


# --------------------------------------------------------------------------- input sets


class NoFaceFound(InputSetError):
    """RetinaFace found no face in some inputs; nothing was stored. ``missing``: their ``<Dataset>/<stem>.png``."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            f"No face was found in {len(missing)} input(s); nothing was stored. Upload a landmarks CSV with rows for"
            " them (the other inputs' landmarks are detected again)."
        )


def extract_input_archive(source: BinaryIO, dest: Path, limits: InputArchiveLimits | None = None) -> int:
    """Extract ``<Dataset>/<stem>.png`` members under ``dest``, read under the participants' archive rules
    (``scoring.archive.input_set``). Raises InputSetError listing the problems."""
    return extract_input_set(source, dest, (limits or input_archive_limits()).archive_limits())


def _save_upload(upload: File, target: Path, max_bytes: int, what: str) -> Path:
    size = upload.size or 0
    if size > max_bytes:
        raise InputSetError(f"The {what} is {size} bytes; at most {max_bytes} are accepted.")
    with open(target, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    upload.seek(0)
    return target


@dataclass(frozen=True)
class InputSetLoaded:
    images: int
    from_csv: int
    detected: int


@dataclass
class _Checked:
    """An input set extracted and checked in a scratch folder, with the landmarks its CSV gave."""

    root: Path
    images: list[ScoringInput]
    landmarks: dict[str, Landmarks]

    @property
    def from_csv(self) -> int:
        return sum(1 for i in self.images if i.stem in self.landmarks)

    @property
    def missing(self) -> list[ScoringInput]:
        return [i for i in self.images if i.stem not in self.landmarks]


# Sent by name: organizers.tasks imports this module in its body.
LOCATE_FACES_TASK = "organizers.tasks.locate_faces"


def load_input_set_upload(
    phase: Phase, archive: File, landmarks_csv: File | None = None, thresholds: dict[str, float] | None = None, *,
    by_user=None,
) -> InputSetLoaded | InputSetJob:
    """Replace the phase's input set with an uploaded zip (and landmarks CSV).

    The archive and the CSV are checked here; any problem raises InputSetError before anything is stored. When
    the CSV gives every input's landmarks the set is stored now (InputSetLoaded). Otherwise the upload is kept
    in an InputSetJob and a worker locates the other faces with RetinaFace (``run_input_set_job``, on the
    default queue: the web process never loads torch); the set is stored only once every input has its
    landmarks.
    """
    thresholds = thresholds or {}
    with _scratch(phase) as root:
        checked = _check(root, archive, landmarks_csv)
        if not checked.missing:
            count = _store(phase, checked, thresholds)
            return InputSetLoaded(images=count, from_csv=checked.from_csv, detected=0)
        job = InputSetJob(phase=phase, created_by=by_user, thresholds=thresholds, images=len(checked.images),
                          from_csv=checked.from_csv)
    archive.seek(0)
    job.archive.save(f"{phase.pk}-inputs.zip", archive, save=False)
    if landmarks_csv is not None:
        landmarks_csv.seek(0)
        job.landmarks_csv.save(f"{phase.pk}-landmarks.csv", landmarks_csv, save=False)
    job.save()
    transaction.on_commit(lambda: _send_job(job.pk))
    return job


def _send_job(job_id: int) -> None:
    try:
        current_app.signature(LOCATE_FACES_TASK).apply_async((job_id,))
    except Exception:
        logger.exception("could not queue input-set job %s", job_id)
        _finish(job_id, InputSetJob.State.FAILED,
                error="The face detection could not be queued (the broker is unreachable); upload the set again.")


def run_input_set_job(job_id: int, *, weights_dir: str | Path | None = None, device: str | None = None) -> str:
    """The worker's side of an InputSetJob: locate the faces the CSV did not give, then store the whole set, or
    nothing when some input has no face. Returns the job's final state; a job already final is left alone."""
    job = InputSetJob.objects.select_related("phase").filter(pk=job_id).first()
    if job is None:
        return "gone"
    # From running too: a worker that died under the job leaves it running and its task is delivered again.
    if not InputSetJob.objects.filter(pk=job_id).exclude(state__in=InputSetJob.FINAL_STATES).update(
            state=InputSetJob.State.RUNNING, done=0):
        return job.state
    try:
        with _scratch(job.phase) as root:
            with default_storage.open(job.archive.name, "rb") as archive:
                csv = default_storage.open(job.landmarks_csv.name, "rb") if job.landmarks_csv else None
                try:
                    checked = _check(root, archive, csv)
                finally:
                    if csv is not None:
                        csv.close()
            missing = checked.missing
            InputSetJob.objects.filter(pk=job_id).update(images=len(checked.images), from_csv=checked.from_csv)
            checked.landmarks.update(_locate_faces(job_id, missing, weights_dir or settings.FR_WEIGHTS_DIR,
                                                   device or settings.FR_SCORING_DEVICE))
            count = _store(job.phase, checked, job.thresholds)
    except NoFaceFound as exc:
        _finish(job_id, InputSetJob.State.FAILED, error=str(exc), no_face=exc.missing)
    except InputSetError as exc:
        _finish(job_id, InputSetJob.State.FAILED, error=str(exc))
    else:
        _finish(job_id, InputSetJob.State.STORED, images=count)
    finally:
        # The upload is not kept once the job is over, stored or not.
        for name in (job.archive.name, job.landmarks_csv.name):
            if name:
                default_storage.delete(name)
        InputSetJob.objects.filter(pk=job_id).update(archive="", landmarks_csv="")
    return str(InputSetJob.objects.values_list("state", flat=True).get(pk=job_id))


def _locate_faces(job_id: int, missing: list[ScoringInput], weights_dir: str | Path, device: str
                  ) -> dict[str, Landmarks]:
    """RetinaFace's landmarks of each of ``missing``, the job's count of done inputs kept up to date; raises
    NoFaceFound listing the inputs where it finds none."""
    # Here, not at the top: scoring.landmarks loads torch, which only workers do.
    from scoring.landmarks import detect_landmarks

    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        if done == total or time.monotonic() - last >= 1:  # at most one write a second
            InputSetJob.objects.filter(pk=job_id).update(done=done)
            last = time.monotonic()

    try:
        detected, no_face = detect_landmarks(missing, weights_dir, device, progress=progress)
    except WeightsError as exc:
        raise InputSetError(f"{len(missing)} input(s) have no landmarks in a CSV and the face detector cannot"
                            f" run: {exc}") from None
    if no_face:
        by_stem = {i.stem: i.relpath for i in missing}
        raise NoFaceFound([by_stem[stem] for stem in no_face])
    return detected


def _finish(job_id: int, state: str, **fields: Any) -> None:
    InputSetJob.objects.filter(pk=job_id).update(state=state, finished_at=timezone.now(), **fields)


@contextlib.contextmanager
def _scratch(phase: Phase) -> Iterator[Path]:
    """A scratch folder for one input set, removed afterwards; InputSetError messages name the uploads rather
    than its paths."""
    scratch_root = Path(settings.FR_SCRATCH_DIR)
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"inputs-{phase.pk}-", dir=scratch_root) as scratch:
        root = Path(scratch)
        try:
            yield root
        except NoFaceFound:
            raise
        except InputSetError as exc:
            message = str(exc).replace(str(root / "landmarks-upload.csv"), "the landmarks CSV")
            raise InputSetError(message.replace(str(root / "inputs"), "the archive")) from None


def _check(root: Path, archive: File, landmarks_csv: File | None) -> _Checked:
    """Extract and check the archive into ``root/inputs`` and read the CSV: every rule on an input set but
    the faces."""
    limits = input_archive_limits()
    if (archive.size or 0) > limits.max_archive_bytes:
        raise InputSetError(f"The archive is {archive.size} bytes; at most {limits.max_archive_bytes} are accepted.")
    inputs = root / "inputs"
    inputs.mkdir()
    archive.seek(0)
    extract_input_archive(archive, inputs, limits)
    images = scan_inputs(inputs)
    too_big = [i.relpath for i in images if i.width * i.height > limits.max_pixels]
    if too_big:
        raise InputSetError(problem_list(f"Images over {limits.max_pixels} pixels", too_big))
    landmarks: dict[str, Landmarks] = {}
    if landmarks_csv is not None:
        landmarks = read_landmarks(_save_upload(landmarks_csv, root / "landmarks-upload.csv", limits.max_csv_bytes,
                                                "landmarks CSV"))
    return _Checked(root, images, landmarks)


def _store(phase: Phase, checked: _Checked, thresholds: dict[str, float]) -> int:
    """Store the checked set once every input has its landmarks; returns how many images were stored."""
    check_landmarks_cover(checked.images, checked.landmarks)
    merged = checked.root / "landmarks.csv"
    write_landmarks(merged, [checked.landmarks[i.stem] for i in checked.images])
    return competition_services.load_input_set(phase, checked.root / "inputs", merged, thresholds=thresholds)


# --------------------------------------------------------------------------- the queue


def set_disqualified(team: Team, disqualified: bool) -> Team:
    with transaction.atomic():
        Team.objects.filter(pk=team.pk).update(disqualified=disqualified)
        board_changed(challenge_id=team.challenge_id)
    team.disqualified = disqualified
    return team


def set_verified(submission: Submission, verified: bool) -> Submission:
    Submission.objects.filter(pk=submission.pk).update(verified=verified)
    submission.verified = verified
    return submission


def add_baseline(*, phase: Phase, name: str, upload: File, by_user, description: str = "",
                 enqueue: bool = True) -> Submission:
    """A named baseline row ("CodeFormer baseline"): a baseline team owned by the organizer (no membership, so
    it does not take the organizer's one team per challenge) and a submission of the uploaded archive, created
    by submissions.services.create_submission (what a baseline skips is said there)."""
    try:
        name = clean_team_name(name)
    except TeamError as exc:
        raise OrganizerError(f"A baseline's name is its team's name: {exc}") from None
    try:
        with transaction.atomic():
            team, _ = Team.objects.get_or_create(challenge=phase.challenge, name_key=team_name_key(name),
                                                 defaults={"name": name, "created_by": by_user, "is_baseline": True})
            if not team.is_baseline:
                raise OrganizerError(f"A participating team is called {team.name!r}; choose another name.")
            return create_submission(phase=phase, team=team, user=by_user, upload=upload,
                                     description=description or name, baseline=True, enqueue=enqueue)
    except SubmissionRefused as exc:
        raise OrganizerError(str(exc)) from None
    except IntegrityError:
        raise OrganizerError(f"The team name {name!r} was taken meanwhile; try again.") from None


# --------------------------------------------------------------------------- bundles and editions


@dataclass(frozen=True)
class BundleImported:
    challenge: Challenge
    phases: int
    images: int
    files_stored: int  # input files written to storage
    files_reused: int  # input files storage had already (same sha256)
    baselines: list[Submission]


_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,50}$")


def _slug_problems(slug: str) -> list[bundles.BundleProblem]:
    if not _SLUG.match(slug):
        return [bundles.BundleProblem("slug", "--slug", f"{slug!r} is not a slug (letters, digits, - and _)")]
    if Challenge.objects.filter(slug=slug).exists():
        return [bundles.BundleProblem("slug", "--slug", f"a challenge with the slug {slug!r} exists already")]
    return []


def import_bundle(path: Path, *, slug: str, start: datetime, user, title: str = "",
                  profiles: dict[str, str] | None = None, enqueue: bool = True) -> BundleImported:
    """Create a challenge from a bundle, its first phase opening at ``start``; ``user`` organizes it.

    The whole bundle is checked first (organizers.bundles.read_bundle) and BundleInvalid lists every problem;
    then everything is written in one transaction, and files written to storage are removed again if anything
    fails. ``profiles``: phase slug (or ``*`` for all) -> the preset to score with instead of the bundle's.
    Baseline archives become baseline submissions, queued for scoring once the transaction commits."""
    profiles = dict(profiles or {})
    problems = _slug_problems(slug)
    try:
        bundle = bundles.read_bundle(path, profiles=profiles)
    except bundles.BundleInvalid as exc:
        raise bundles.BundleInvalid(problems + exc.problems) from None
    written: list[str] = []
    try:
        if problems:
            raise bundles.BundleInvalid(problems)
        with transaction.atomic():
            return _create_from_bundle(bundle, slug, start, user, title, profiles, enqueue, written)
    except IntegrityError:
        remove_stored(written)
        taken = _slug_problems(slug)  # the slug was taken meanwhile: say so; anything else is a bug, raised
        if taken:
            raise bundles.BundleInvalid(taken) from None
        raise
    except BaseException:
        remove_stored(written)
        raise
    finally:
        bundle.close()


def _create_from_bundle(bundle: bundles.Bundle, slug: str, start: datetime, user, title: str,
                        profiles: dict[str, str], enqueue: bool, written: list[str]) -> BundleImported:
    manifest = bundle.manifest
    about = manifest["challenge"]
    challenge = competition_services.create_challenge(
        slug=slug, title=title or about["title"], description=about["description"],
        max_team_size=about["max_team_size"], organizers=[user],
        registration_mode=about.get("registration_mode", Challenge.RegistrationMode.OPEN))
    for page in about.get("pages", []):  # a new challenge: its Terms start again at version 1
        competition_services.save_page(challenge=challenge, kind=page["kind"], body=page["body"], title=page["title"],
                                       slug=page["slug"], order=page["order"])
    stored: dict[str, str] = {}
    images = reused = 0
    baselines: list[Submission] = []
    scratch = Path(settings.FR_SCRATCH_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    for entry in manifest["phases"]:
        opens_at, closes_at = bundles.phase_dates(entry, start)
        name, snapshot = entry["scoring_profile"], entry["profile_snapshot"]
        chosen = profiles.get(entry["slug"]) or profiles.get("*")
        if chosen and chosen != name:
            name, snapshot = chosen, competition_services.retargeted_snapshot(chosen, snapshot["identity_thresholds"])
        metrics = {term["metric"] for term in snapshot["terms"]}
        phase = competition_services.create_phase(
            challenge=challenge, slug=entry["slug"], name=entry["name"], scoring_profile=name,
            profile_snapshot=snapshot, kind=entry["kind"], order=entry["order"], opens_at=opens_at,
            closes_at=closes_at, visibility=entry["visibility"], selection=entry["selection"],
            shown_metrics=[m for m in entry["shown_metrics"] if m in metrics], **entry["limits"])
        for item in entry["datasets"]:
            # The snapshot holds the thresholds scoring uses; the dataset rows show the same.
            dataset = InputDataset.objects.create(phase=phase, name=item["name"],
                                                  identity_threshold=snapshot["identity_thresholds"][item["name"]])
            rows = []
            for image in item["images"]:
                if image["sha256"] not in stored:
                    content = ContentFile(b"".join(bundle.stream(image["file"])))
                    stored[image["sha256"]], created = competition_services.store_input_file(image["sha256"], content)
                    if created:
                        written.append(stored[image["sha256"]])
                    else:
                        reused += 1
                rows.append(InputImage(dataset=dataset, stem=image["stem"], width=image["width"],
                                       height=image["height"], sha256=image["sha256"],
                                       file=stored[image["sha256"]], landmarks=image["landmarks"], box=image["box"]))
            InputImage.objects.bulk_create(rows)
            images += len(rows)
        if entry["datasets"]:
            request_phase_data(phase.pk)
        for item in entry["baselines"]:
            with tempfile.TemporaryFile(dir=scratch) as spool:
                for block in bundle.stream(item["archive"]):
                    spool.write(block)
                spool.seek(0)
                submission = add_baseline(phase=phase, name=item["name"], upload=File(spool, name="baseline.zip"),
                                          by_user=user, description=item["description"], enqueue=enqueue)
            written.append(submission.archive.name)
            baselines.append(submission)
    return BundleImported(challenge=challenge, phases=len(manifest["phases"]), images=images,
                          files_stored=len(stored) - reused, files_reused=reused, baselines=baselines)


def import_bundle_upload(upload: File, **options: Any) -> BundleImported:
    """import_bundle for a bundle uploaded through the organizer page (refused over the size limit unread)."""
    limit = bundles.bundle_limits().max_archive_bytes
    if (upload.size or 0) > limit:
        raise bundles.BundleInvalid([bundles.BundleProblem("too_large", "bundle",
                                                           f"{upload.size} bytes; at most {limit} are accepted")])
    scratch = Path(settings.FR_SCRATCH_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=".zip") as spool:
        for chunk in upload.chunks():
            spool.write(chunk)
        spool.flush()
        return import_bundle(Path(spool.name), **options)


def new_edition(challenge: Challenge, *, slug: str, start: datetime, user, title: str = "",
                profiles: dict[str, str] | None = None, enqueue: bool = True) -> BundleImported:
    """Copy a challenge into a new one (next year's, say) through its own bundle: the same pages, phases,
    limits, input sets and baselines, dates shifted to ``start``, the chosen profiles; no participants."""
    scratch = Path(settings.FR_SCRATCH_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=".zip") as spool:
        bundles.export_bundle(challenge, spool)
        spool.flush()
        return import_bundle(Path(spool.name), slug=slug, start=start, user=user, title=title, profiles=profiles,
                             enqueue=enqueue)


# --------------------------------------------------------------------------- e-mail


def email_phase_teams(phase: Phase, *, subject: str, body: str, by_user) -> int:
    """One message per recipient (addresses are not shown to each other); returns how many were sent."""
    recipients = list(selectors.phase_recipients(phase).values_list("email", flat=True))
    if not recipients:
        return 0
    reply_to = [by_user.email] if by_user.email else None
    prefix = f"[{phase.challenge.title}] "
    messages = [
        EmailMessage(subject=prefix + subject, body=body, to=[address], reply_to=reply_to)
        for address in recipients
    ]
    with get_connection() as connection:
        sent = connection.send_messages(messages) or 0
    logger.info("%s e-mailed %s recipient(s) of %s: %s", by_user, sent, phase, subject)
    return sent
