"""Reads for a phase's downloads: the input set's version, the files participants see, the download counts."""

from __future__ import annotations

import hashlib
import json

from django.db.models import Count, QuerySet

from competitions.models import Download, InputImage, Phase, PhaseFile


def input_set_rows(phase: Phase) -> QuerySet[InputImage]:
    return InputImage.objects.filter(dataset__phase=phase).select_related("dataset").order_by("dataset__name", "stem")


def input_set_version(phase: Phase) -> str:
    """A digest of what the built files hold (every input's path, content and landmarks): a new input set, or
    changed landmarks, is a new version; the same set loaded again is the same one. "" without an input set."""
    digest = hashlib.sha256()
    count = 0
    for name, stem, sha256, landmarks, box in input_set_rows(phase).values_list(
            "dataset__name", "stem", "sha256", "landmarks", "box"):
        digest.update(json.dumps([name, stem, sha256, landmarks, box]).encode() + b"\n")
        count += 1
    return digest.hexdigest()[:32] if count else ""


def phase_files(phase: Phase) -> list[PhaseFile]:
    """The built files of the current input-set version (none while they are being built), then the extras."""
    version = input_set_version(phase)
    built = list(phase.files.filter(kind__in=PhaseFile.BUILT, version=version)) if version else []
    order = {kind: n for n, kind in enumerate(PhaseFile.BUILT)}
    built.sort(key=lambda f: order[f.kind])
    return built + list(phase.files.filter(kind=PhaseFile.Kind.EXTRA).order_by("created_at", "id"))


def phase_file(phase: Phase, file_id: int) -> PhaseFile | None:
    """One of the files ``phase_files`` lists, by id; None for any other id (another phase's, an old version's)."""
    return next((f for f in phase_files(phase) if f.pk == file_id), None)


def data_pending(phase: Phase, files: list[PhaseFile]) -> bool:
    """The phase has an input set whose files are not built yet."""
    return phase.datasets.exists() and not any(f.kind == PhaseFile.Kind.INPUTS for f in files)


def download_counts(phase: Phase) -> list[dict]:
    """Per file (kind and name, any version): downloads and distinct people, most downloaded first."""
    return list(Download.objects.filter(phase=phase).values("kind", "name")
                .annotate(downloads=Count("id"), people=Count("user", distinct=True)).order_by("-downloads", "name"))
