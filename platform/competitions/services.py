"""Writes for challenges and phases: create them, load a phase's input set."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from competitions.data_services import request_phase_data
from competitions.models import Challenge, InputDataset, InputImage, Phase
from scoring.inputs import InputSetError, check_landmarks_cover, read_landmarks, scan_inputs
from scoring.profile import NTIRE2025_THRESHOLDS, get_profile


def create_challenge(*, slug: str, title: str, description: str = "", max_team_size: int = 5,
                     organizers=()) -> Challenge:
    challenge = Challenge.objects.create(slug=slug, title=title, description=description,
                                         max_team_size=max_team_size)
    challenge.organizers.set(organizers)
    return challenge


def create_phase(*, challenge: Challenge, slug: str, name: str, scoring_profile: str,
                 profile_snapshot: dict | None = None, **fields) -> Phase:
    """``profile_snapshot``: the profile as another phase had it (a bundle's); by default the preset's."""
    profile = get_profile(scoring_profile)  # unknown names fail here, before anything is stored
    return Phase.objects.create(challenge=challenge, slug=slug, name=name, scoring_profile=profile.name,
                                profile_snapshot=profile_snapshot or profile.to_dict(), **fields)


def retargeted_snapshot(scoring_profile: str, thresholds: dict[str, float]) -> dict:
    """The preset's snapshot for a phase moving to it (next year's rules): the preset's identity thresholds win,
    datasets it does not know keep the thresholds they had."""
    profile = get_profile(scoring_profile).to_dict()
    profile["identity_thresholds"] = {**thresholds, **profile["identity_thresholds"]}
    return profile


def input_storage_name(sha256: str) -> str:
    # Input images are stored once per content: phases and editions sharing an image share its file.
    return f"inputs/sha256/{sha256}.png"


def store_input_file(sha256: str, content: File) -> tuple[str, bool]:
    """Store an input image under its sha256 unless it is there already; (storage name, whether written)."""
    name = input_storage_name(sha256)
    if default_storage.exists(name):
        return name, False
    return default_storage.save(name, content), True  # another name only if a concurrent writer came first


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_input_set(phase: Phase, folder: Path, landmarks_csv: Path,
                   thresholds: dict[str, float] | None = None) -> int:
    """Replace the phase's input set with ``folder/<Dataset>/<stem>.png`` and their landmarks.

    Everything is checked before anything is written; a bad folder or CSV changes nothing.
    """
    images = scan_inputs(folder)
    landmarks = read_landmarks(landmarks_csv)
    check_landmarks_cover(images, landmarks)
    profile_thresholds = dict(phase.profile_snapshot.get("identity_thresholds") or NTIRE2025_THRESHOLDS)
    profile_thresholds.update(thresholds or {})
    unknown = sorted({img.dataset for img in images} - set(profile_thresholds))
    if unknown:
        raise InputSetError(f"no identity threshold for dataset(s): {', '.join(unknown)}")
    with transaction.atomic():
        phase.datasets.all().delete()
        datasets = {
            name: InputDataset.objects.create(phase=phase, name=name, identity_threshold=profile_thresholds[name])
            for name in sorted({img.dataset for img in images})
        }
        for img in images:
            lm = landmarks[img.stem]
            sha256 = _sha256(img.path)
            with open(img.path, "rb") as handle:
                stored, _ = store_input_file(sha256, File(handle))
            InputImage.objects.create(dataset=datasets[img.dataset], stem=img.stem, width=img.width,
                                      height=img.height, sha256=sha256, file=stored,
                                      landmarks=[list(p) for p in lm.points], box=list(lm.box))
        if profile_thresholds != phase.profile_snapshot.get("identity_thresholds"):
            phase.profile_snapshot = {**phase.profile_snapshot, "identity_thresholds": profile_thresholds}
            phase.save(update_fields=["profile_snapshot"])
        request_phase_data(phase.pk)  # the downloads of this input-set version, built by a worker
    return len(images)
