"""Where tests find the shared challenge data and their generated model weights."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def shared_dir() -> Path:
    """../shared (or FR_SHARED_DIR). Missing: a loud failure in CI, a skip elsewhere."""
    path = Path(os.environ.get("FR_SHARED_DIR") or ROOT.parent / "shared")
    if not (path / "ntire2025" / "val").is_dir():
        message = f"the shared challenge data is not at {path} (set FR_SHARED_DIR)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_weights_dir() -> Path:
    """Test weights (real architectures, random init, fixed seed), generated once per machine."""
    from scoring.testweights import default_test_weights_dir, ensure_test_weights, shared_niqe_params

    return ensure_test_weights(default_test_weights_dir(), niqe_params=shared_niqe_params())


def landmark_weights_dir() -> Path:
    """RetinaFace's test weights (random init, fixed seed; their class heads find no face), made once a machine."""
    from scoring.testweights import TEST_WEIGHTS_VERSION, default_test_weights_dir, make_test_weights

    directory = default_test_weights_dir().parent / f"test-weights-retinaface-v{TEST_WEIGHTS_VERSION}"
    if not (directory / "manifest.json").is_file() or not (directory / "detection_Resnet50_Final.pth").is_file():
        make_test_weights(directory, models=("retinaface",))
    return directory


def subset_of_validation(target: Path, per_dataset: int = 1) -> tuple[Path, Path]:
    """Copy the first ``per_dataset`` validation inputs of each dataset and their landmarks."""
    shared = shared_dir() / "ntire2025"
    inputs = target / "inputs"
    chosen: set[str] = set()
    for dataset_dir in sorted((shared / "val").iterdir()):
        for png in sorted(dataset_dir.glob("*.png"))[:per_dataset]:
            (inputs / dataset_dir.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, inputs / dataset_dir.name / png.name)
            chosen.add(png.stem)
    landmarks = target / "landmarks.csv"
    with open(shared / "val_face.csv", newline="") as source, open(landmarks, "w", newline="") as out:
        reader = csv.reader(source)
        writer = csv.writer(out)
        writer.writerow(next(reader))
        writer.writerows(row for row in reader if row[0] in chosen)
    return inputs, landmarks
