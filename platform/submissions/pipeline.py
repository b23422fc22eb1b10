"""The worker's side of a submission: fetch, check, score, store. Idempotent.

A redelivered task (worker killed, broker restarted) finds the submission either still
``submitted`` (it runs), already taken by a live worker (it leaves it), or final (it
does nothing). Results are written once: the one-to-one result row guards against a
second copy even when two deliveries race.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from competitions.models import InputImage, Phase
from competitions.selectors import phase_profile
from scoring.archive import ArchiveLimits, ExpectedImage, check_and_extract
from scoring.inputs import InputImage as ScoringInput
from scoring.inputs import Landmarks
from scoring.profile import ScoringProfile
from scoring.results import ScoreReport
from submissions import transitions
from submissions.models import DatasetScore, FidFeatures, ImageScore, Submission, SubmissionResult
from submissions.selectors import restored_image_name

if TYPE_CHECKING:
    from scoring.scorer import ScoringModels

logger = logging.getLogger(__name__)
State = Submission.State


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def local_input_set(phase: Phase) -> tuple[list[ScoringInput], dict[str, Landmarks]]:
    """The phase's inputs as local files, downloaded once per worker and input-set version."""
    rows = list(
        InputImage.objects.filter(dataset__phase=phase).select_related("dataset").order_by("dataset__name", "stem")
    )
    if not rows:
        raise RuntimeError(f"phase {phase} has no input set")
    version = hashlib.sha256("".join(r.sha256 for r in rows).encode()).hexdigest()[:16]
    root = Path(settings.FR_SCRATCH_DIR) / "inputs" / f"phase-{phase.pk}-{version}"
    if not (root / ".complete").exists():
        staging = Path(tempfile.mkdtemp(dir=_scratch_root()))
        for row in rows:
            target = staging / row.dataset.name / f"{row.stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            with default_storage.open(row.file.name, "rb") as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        (staging / ".complete").touch()
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(root)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (root / ".complete").exists():  # not just another worker process finishing first
                raise
    inputs = [ScoringInput(r.dataset.name, r.stem, root / r.dataset.name / f"{r.stem}.png", r.width, r.height)
              for r in rows]
    landmarks = {
        r.stem: Landmarks(stem=r.stem, dataset=r.dataset.name, box=tuple(r.box or (0, 0, 0, 0)),
                          points=tuple(tuple(p) for p in r.landmarks))
        for r in rows
    }
    return inputs, landmarks


def stream_to_file(name: str, target: Path) -> str:
    """Copy a stored file to local scratch space in chunks; returns its sha256."""
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as source, open(target, "wb") as out:
        while block := source.read(1 << 20):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def worker_models(profile: ScoringProfile) -> ScoringModels:
    """This worker's models for ``profile``, from its weights folder on its device; loaded once a process."""
    from scoring.scorer import load_models  # loads torch: only when a worker asks (see run_submission)

    return load_models(settings.FR_WEIGHTS_DIR, profile, settings.FR_SCORING_DEVICE)


def preload_models() -> list[str]:
    """Load the models of every open phase's profile, so the first submission finds them warm."""
    loaded = []
    for phase in Phase.objects.filter(Phase.open_q()):
        profile = phase_profile(phase)
        if profile.needs_gpu and settings.FR_SCORING_DEVICE == "cpu":
            continue
        worker_models(profile)
        loaded.append(profile.name)
    return loaded


def archive_limits(phase: Phase) -> ArchiveLimits:
    return ArchiveLimits(max_archive_bytes=phase.max_archive_bytes)


def run_submission(submission_id: int) -> str:
    """Process one submission end to end; returns the state it ended in (or was found in)."""
    if not transitions.transition(
        submission_id, State.VALIDATING, "Checking the archive.", sources=(State.SUBMITTED,),
        worker=worker_name(), attempts=F("attempts") + 1,
    ):
        return Submission.objects.filter(pk=submission_id).values_list("state", flat=True).first() or "missing"
    submission = Submission.objects.select_related("phase").get(pk=submission_id)
    phase = submission.phase
    scratch = Path(tempfile.mkdtemp(prefix=f"sub-{submission_id}-", dir=_scratch_root()))
    # Alive from here on: fetching the archive, checking it and loading the models can outlast the
    # watchdog's heartbeat timeout as much as scoring can.
    beat = Heartbeat(submission_id).start()
    try:
        try:
            inputs, landmarks = local_input_set(phase)
        except Exception as exc:  # infrastructure: storage unreachable, input set missing
            return _fail(submission_id, f"Could not read the phase's input set: {exc}", infrastructure=True)
        archive_path = scratch / "archive.zip"
        try:
            digest = stream_to_file(submission.archive.name, archive_path)
        except Exception as exc:
            return _fail(submission_id, f"Could not fetch the archive from storage: {exc}", infrastructure=True)
        if not submission.archive_sha256:  # uploaded straight to S3: the web process never read it
            Submission.objects.filter(pk=submission_id).update(archive_sha256=digest)
            transitions.log(submission_id, f"Archive sha256 {digest}.")

        expected = [ExpectedImage(i.relpath, i.width, i.height) for i in inputs]
        restored = scratch / "restored"
        report = check_and_extract(archive_path, expected, restored, archive_limits(phase))
        archive_path.unlink(missing_ok=True)
        if not report.ok:
            if transitions.transition(submission_id, State.REJECTED, "Archive rejected.\n" + report.summary(),
                                      error=report.summary()[:5000]):
                _notify(submission_id)
            return State.REJECTED
        if not transitions.transition(
            submission_id, State.SCORING, f"Archive valid: {report.checked_files} images. Scoring.",
            sources=(State.VALIDATING,), progress_total=len(inputs),
        ):
            return Submission.objects.get(pk=submission_id).state

        profile = phase_profile(phase)
        # Imported here, not at the top: scoring.scorer loads torch, and importing this module (the
        # worker's start-up hook, the demo command) stays light until a submission is scored.
        from scoring.scorer import score_restored

        try:
            models = worker_models(profile)
        except Exception as exc:  # missing or corrupt weights are the platform's fault
            return _fail(submission_id, f"The scoring models could not be loaded: {exc}", infrastructure=True)

        def progress(done: int, total: int) -> None:
            if beat.abandoned or not transitions.heartbeat(submission_id, progress_done=done):
                raise SubmissionAbandoned()

        started = time.perf_counter()
        try:
            result = score_restored(inputs, landmarks, restored, profile, models, progress=progress,
                                    images_per_call=settings.FR_IMAGES_PER_CALL)
        except SoftTimeLimitExceeded:
            return _fail(submission_id, f"Scoring passed its time limit of {settings.FR_SCORING_TIME_LIMIT} s.",
                         infrastructure=True)
        except SubmissionAbandoned:
            transitions.log(submission_id, "Scoring stopped: the submission was cancelled or taken over.")
            return Submission.objects.get(pk=submission_id).state
        except Exception as exc:
            logger.exception("scoring crashed for submission %s", submission_id)
            return _fail(submission_id, f"A metric failed while scoring: {type(exc).__name__}: {exc}",
                         infrastructure=True)
        seconds = time.perf_counter() - started
        state = store_result(submission_id, result, seconds)
        if state == State.SCORED:
            keep_failed_images(submission_id, result, restored)
        return state
    finally:
        beat.stop()
        shutil.rmtree(scratch, ignore_errors=True)


class SubmissionAbandoned(Exception):
    pass


class Heartbeat:
    """Marks the submission alive from a side thread while a long batch is being scored, so the
    watchdog can tell a slow run from a dead worker; notices when the run was taken away."""

    def __init__(self, submission_id: int) -> None:
        self.submission_id = submission_id
        self.interval = max(0.5, min(30.0, settings.FR_HEARTBEAT_TIMEOUT / 5))
        self.abandoned = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{submission_id}", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                if not transitions.heartbeat(self.submission_id):
                    self.abandoned = True
                    return
        except Exception:  # the database may be restarting; the watchdog has the last word
            logger.warning("heartbeat of submission %s failed", self.submission_id, exc_info=True)
        finally:
            connection.close()

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _scratch_root() -> Path:
    root = Path(settings.FR_SCRATCH_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _fail(submission_id: int, message: str, *, infrastructure: bool) -> str:
    fields = {"error": message[:5000]}
    if infrastructure:
        fields["counts_toward_quota"] = False
        message += " This run does not count against your team's quota."
    if transitions.transition(submission_id, State.FAILED, message, **fields):
        _notify(submission_id)
    return State.FAILED


def store_result(submission_id: int, report: ScoreReport, seconds: float) -> str:
    """Write the result rows and mark the submission scored, in one transaction, once."""
    try:
        with transaction.atomic():
            result = SubmissionResult.objects.create(
                submission_id=submission_id,
                total=report.total,
                failed_count=report.failed_count,
                valid=report.valid,
                id_similarity=report.id_similarity,
                metrics=report.overall,
                terms=report.terms,
                profile=report.profile,
                weights=report.weights,
                official_weights=report.official_weights,
                versions=report.versions,
                device=report.device,
                timings=report.timings,
            )
            DatasetScore.objects.bulk_create(
                DatasetScore(result=result, dataset=d.dataset, image_count=d.image_count, metrics=d.metrics,
                             id_similarity=d.id_similarity, failed_count=d.failed_count)
                for d in report.datasets
            )
            ImageScore.objects.bulk_create(
                (ImageScore(result=result, dataset=i.dataset, stem=i.stem, metrics=i.metrics,
                            id_similarity=i.id_similarity, id_threshold=i.id_threshold, id_failed=i.id_failed)
                 for i in report.images),
                batch_size=500,
            )
            if report.fid_features is not None:
                features = np.ascontiguousarray(report.fid_features, dtype=FidFeatures.DTYPE)
                FidFeatures.objects.create(result=result, images=[i.relpath for i in report.images],
                                           dim=features.shape[1], data=features.tobytes())
            validity = "valid" if report.valid else (
                f"NOT valid: more than {report.profile.get('max_failed_images', 10)} images failed the identity test"
            )
            if not transitions.transition(
                submission_id, State.SCORED,
                f"Scored in {seconds:.1f} s: total {report.total:.4f}, {report.failed_count} image(s) failed the"
                f" identity test ({validity}).",
                sources=(State.SCORING,), progress_done=len(report.images),
            ):
                raise _AlreadyFinal()
    except (IntegrityError, _AlreadyFinal):
        # Another delivery stored the result first, or the run was cancelled meanwhile.
        return Submission.objects.get(pk=submission_id).state
    _notify(submission_id)
    return State.SCORED


class _AlreadyFinal(Exception):
    pass


MAX_KEPT_FAILED_IMAGES = 500
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def keep_failed_images(submission_id: int, report: ScoreReport, restored: Path) -> int:
    """Copy the restored images that failed the identity test (and nothing else) to storage, so the team can
    compare them with their inputs. Best effort: the scores are already stored. Returns the number kept."""
    kept = 0
    failed = sorted((i for i in report.images if i.id_failed), key=lambda i: (i.dataset, i.stem))
    _forget_restored_images(submission_id)  # a re-run's images replace the previous run's
    for image in failed[:MAX_KEPT_FAILED_IMAGES]:
        source = restored / image.dataset / f"{image.stem}.png"
        name = restored_image_name(submission_id, image.dataset, image.stem)
        try:
            with open(source, "rb") as handle:
                if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                    continue
                handle.seek(0)
                default_storage.save(name, handle)
            kept += 1
        except Exception:
            logger.warning("could not keep restored image %s of submission %s", image.relpath, submission_id,
                           exc_info=True)
    if len(failed) > kept:
        logger.info("kept %s of %s failed restored images of submission %s", kept, len(failed), submission_id)
    return kept


def _forget_restored_images(submission_id: int) -> None:
    root = f"restored/{submission_id}"
    try:
        datasets, _files = default_storage.listdir(root)
        for dataset in datasets:
            for name in default_storage.listdir(f"{root}/{dataset}")[1]:
                default_storage.delete(f"{root}/{dataset}/{name}")
    except FileNotFoundError:
        pass
    except Exception:
        logger.warning("could not remove the kept images of submission %s", submission_id, exc_info=True)


def _notify(submission_id: int) -> None:
    submission = Submission.objects.select_related("submitted_by", "phase").get(pk=submission_id)
    email = submission.submitted_by.email
    if email:
        # No score in the mail: the page shows them where the phase's visibility allows.
        reason = f"\n\n{submission.error}" if submission.state != State.SCORED and submission.error else ""
        send_mail(
            f"Submission {submission_id} is {submission.state}",
            f"Your submission {submission_id} to {submission.phase.name} is {submission.state} at "
            f"{timezone.now():%Y-%m-%d %H:%M} UTC.{reason}",
            None,
            [email],
            fail_silently=True,
        )
