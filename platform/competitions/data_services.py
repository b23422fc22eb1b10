"""Writes for a phase's downloads: build the input-set zip, landmarks CSV and starting kit once per input-set
version, store organizers' extra files, record each download.

Building reads every input from storage and writes the files to scratch, then to storage: heavy, so it runs in a
Celery task (competitions.tasks.build_phase_data), queued when an input set is stored.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from competitions import data_selectors
from competitions.models import Download, Phase, PhaseFile
from competitions.storage import remove_stored, sha256_of_upload
from scoring.inputs import Landmarks, write_landmarks
from scoring.weights import sha256_of

logger = logging.getLogger(__name__)
Kind = PhaseFile.Kind
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same input set always gives the same bytes


class DataError(Exception):
    """Refused; the message is shown as it is. ``code``: a stable machine code."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)



BUILD_TASK = "competitions.tasks.build_phase_data"


def request_phase_data(phase_id: int) -> None:
    """Queue the build once the current transaction commits. A broker outage is logged, never raised: the input
    set is stored all the same and the organizers' "Build the downloads" button queues it again."""

    def send() -> None:
        try:
            # By name: a service never imports its task's module (the task imports this one).
            current_app.signature(BUILD_TASK).apply_async((phase_id,), retry=True, retry_policy={"max_retries": 2})
        except Exception:
            logger.exception("could not queue the downloads of phase %s", phase_id)

    transaction.on_commit(send)


def _file_stem(phase: Phase) -> str:
    return f"{phase.challenge.slug}-{phase.slug}"


def kit_readme(phase: Phase, inputs_name: str, landmarks_name: str) -> str:
    datasets = ", ".join(phase.datasets.values_list("name", flat=True))
    return f"""# Starting kit: {phase.challenge.title}, {phase.name}

`sample_submission.zip` is a valid submission for this phase: the low-quality inputs themselves, one per input,
laid out as a submission must be:

    <Dataset>/<stem>.png     one 8-bit RGB PNG per input, the input's size, the input's name

Datasets: {datasets}. Nothing else goes in the zip (no folder above the datasets is needed; operating-system
clutter such as __MACOSX/ is ignored). Replace the images by your restorations and zip the folder again.

Check a submission before uploading it, and score it as the server does (`pip install` the scorer first, see the
platform's README, "Taking part"):

    unzip {inputs_name} -d inputs/
    python -m scoring check --inputs inputs/ sample_submission.zip
    python -m scoring score --inputs inputs/ --landmarks {landmarks_name} --restored sample_submission.zip \\
        --weights weights/ --out out/ --profile {phase.scoring_profile}

`python -m scoring download --phase {phase.pk} --out DIR` fetches the inputs and landmarks and checks them.
"""


def _write_inputs_zip(phase: Phase, target: Path) -> int:
    count = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for image in data_selectors.input_set_rows(phase):
            info = zipfile.ZipInfo(image.relpath, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with default_storage.open(image.file.name, "rb") as source, archive.open(info, "w") as out:
                shutil.copyfileobj(source, out, 1 << 20)  # PNGs are compressed already: stored as they are
            count += 1
    return count


def _write_landmarks(phase: Phase, target: Path) -> None:
    write_landmarks(target, [
        Landmarks(stem=image.stem, dataset=image.dataset.name, box=tuple(image.box),  # type: ignore[arg-type]
                  points=tuple(tuple(p) for p in image.landmarks))  # type: ignore[arg-type]
        for image in data_selectors.input_set_rows(phase)])


def _write_kit(phase: Phase, inputs_zip: Path, readme: str, target: Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as kit:
        info = zipfile.ZipInfo("README.md", date_time=_ZIP_TIME)
        info.external_attr = 0o644 << 16
        kit.writestr(info, readme.encode(), compress_type=zipfile.ZIP_DEFLATED)
        info = zipfile.ZipInfo("sample_submission.zip", date_time=_ZIP_TIME)
        info.external_attr = 0o644 << 16
        with open(inputs_zip, "rb") as source, kit.open(info, "w", force_zip64=True) as out:
            shutil.copyfileobj(source, out, 1 << 20)


def build_phase_data(phase: Phase) -> list[PhaseFile]:
    """The built files of the phase's current input-set version, building them unless they exist already.

    The previous version's files are removed once the new ones are stored. Safe to run twice at once: the second
    finds the first's rows (or loses the race on the unique constraint and removes what it stored)."""
    version = data_selectors.input_set_version(phase)
    if not version:
        return []
    existing = list(phase.files.filter(kind__in=PhaseFile.BUILT, version=version))
    if len(existing) == len(PhaseFile.BUILT):
        return existing
    stem = _file_stem(phase)
    names = {Kind.INPUTS: f"{stem}-inputs.zip", Kind.LANDMARKS: f"{stem}_face.csv",
             Kind.STARTING_KIT: f"{stem}-starting-kit.zip"}
    scratch_root = Path(settings.FR_SCRATCH_DIR)
    scratch_root.mkdir(parents=True, exist_ok=True)
    stored: list[str] = []
    with tempfile.TemporaryDirectory(prefix=f"phase-data-{phase.pk}-", dir=scratch_root) as scratch:
        root = Path(scratch)
        paths = {kind: root / name for kind, name in names.items()}
        _write_inputs_zip(phase, paths[Kind.INPUTS])
        _write_landmarks(phase, paths[Kind.LANDMARKS])
        _write_kit(phase, paths[Kind.INPUTS], kit_readme(phase, names[Kind.INPUTS], names[Kind.LANDMARKS]),
                   paths[Kind.STARTING_KIT])
        if data_selectors.input_set_version(phase) != version:  # replaced while we built: its own build follows
            return []
        rows = []
        try:
            for kind, path in paths.items():
                with open(path, "rb") as handle:
                    name = default_storage.save(f"downloads/phase-{phase.pk}/{version}/{path.name}", File(handle))
                stored.append(name)
                rows.append(PhaseFile(phase=phase, kind=kind, version=version, name=path.name, file=name,
                                      size=path.stat().st_size, sha256=sha256_of(path)))
            with transaction.atomic():
                PhaseFile.objects.bulk_create(rows)
                old = list(phase.files.filter(kind__in=PhaseFile.BUILT).exclude(version=version))
                old_names = [f.file.name for f in old]
                PhaseFile.objects.filter(pk__in=[f.pk for f in old]).delete()
                transaction.on_commit(lambda: remove_stored(old_names))
        except IntegrityError:  # another build of this version came first: keep its files
            remove_stored(stored)
            return list(phase.files.filter(kind__in=PhaseFile.BUILT, version=version))
        except BaseException:
            remove_stored(stored)
            raise
    logger.info("built the downloads of %s, input-set version %s", phase, version)
    return rows


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


def add_extra_file(phase: Phase, upload: File, *, title: str, by_user) -> PhaseFile:
    """Store a file an organizer uploads for the phase's participants (a factsheet template, say)."""
    size = upload.size or 0
    if size == 0:
        raise DataError("empty", "The uploaded file is empty.")
    if size > settings.FR_EXTRA_FILE_MAX_BYTES:
        raise DataError("too_large", f"The file is {size} bytes; at most {settings.FR_EXTRA_FILE_MAX_BYTES} are"
                                     " accepted.")
    name = _SAFE_NAME.sub("_", Path(upload.name or "file").name).strip("._") or "file"
    sha256 = sha256_of_upload(upload)
    stored = default_storage.save(f"downloads/phase-{phase.pk}/extra/{uuid.uuid4().hex}/{name}", upload)
    try:
        return PhaseFile.objects.create(phase=phase, kind=Kind.EXTRA, name=name, title=title.strip()[:200] or name,
                                        file=stored, size=size, sha256=sha256, uploaded_by=by_user)
    except BaseException:
        remove_stored([stored])
        raise


def delete_extra_file(phase: Phase, file_id: int) -> None:
    found = phase.files.filter(kind=Kind.EXTRA, pk=file_id).first()
    if found is None:
        raise DataError("not_found", "No such file.")
    name = found.file.name
    found.delete()
    transaction.on_commit(lambda: remove_stored([name]))


def record_download(phase_file: PhaseFile, user, via: str) -> Download:
    return Download.objects.create(phase_id=phase_file.phase_id, file=phase_file, kind=phase_file.kind,
                                   name=phase_file.name, version=phase_file.version, user=user, via=via)
