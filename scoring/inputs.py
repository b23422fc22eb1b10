"""A phase's input set: the low-quality images and their five facial landmarks."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from scoring import csv_cells

LANDMARK_COLUMNS = (
    "left_eye_x", "left_eye_y",
    "right_eye_x", "right_eye_y",
    "nose_x", "nose_y",
    "mouth_left_x", "mouth_left_y",
    "mouth_right_x", "mouth_right_y",
)
LANDMARKS_HEADER = ("filename", "dataset", "x1", "y1", "x2", "y2", *LANDMARK_COLUMNS)

Points = tuple[tuple[float, float], ...]


class InputSetError(ValueError):
    """The input folder or landmarks file is not usable; the message says why."""


@dataclass(frozen=True)
class InputImage:
    dataset: str
    stem: str
    path: Path
    width: int
    height: int

    @property
    def relpath(self) -> str:
        return f"{self.dataset}/{self.stem}.png"


@dataclass(frozen=True)
class Landmarks:
    stem: str
    dataset: str
    box: tuple[float, float, float, float]
    points: Points  # left eye, right eye, nose, left mouth corner, right mouth corner


def read_landmarks(csv_path: Path) -> dict[str, Landmarks]:
    """Read a landmarks CSV in the organizers' ``val_face.csv`` layout, keyed by stem."""
    if not Path(csv_path).is_file():
        raise InputSetError(f"landmarks file not found: {csv_path}")
    landmarks: dict[str, Landmarks] = {}
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in LANDMARKS_HEADER if c not in (reader.fieldnames or [])]
        if missing:
            raise InputSetError(f"{csv_path}: missing columns {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                values = [float(row[c]) for c in LANDMARK_COLUMNS]
                box = tuple(float(row[c]) for c in ("x1", "y1", "x2", "y2"))
            except (TypeError, ValueError):
                raise InputSetError(f"{csv_path}:{line}: landmark values must be numbers") from None
            stem = row["filename"].rsplit(".", 1)[0] if row["filename"].endswith(".png") else row["filename"]
            if stem in landmarks:
                raise InputSetError(f"{csv_path}:{line}: {stem} appears twice")
            points = tuple((values[i], values[i + 1]) for i in range(0, 10, 2))
            landmarks[stem] = Landmarks(stem=stem, dataset=row["dataset"], box=box, points=points)  # type: ignore[arg-type]
    return landmarks


def write_landmarks(csv_path: Path, rows: list[Landmarks]) -> None:
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv_cells.writer(handle)
        writer.writerow(LANDMARKS_HEADER)
        for lm in rows:
            flat = [c for point in lm.points for c in point]
            writer.writerow([lm.stem, lm.dataset, *lm.box, *flat])


def scan_inputs(inputs_dir: Path) -> list[InputImage]:
    """List ``<Dataset>/<stem>.png`` under ``inputs_dir``, sorted by dataset then stem."""
    from PIL import Image

    root = Path(inputs_dir)
    if not root.is_dir():
        raise InputSetError(f"inputs folder not found: {root}")
    images: list[InputImage] = []
    for dataset_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for png in sorted(dataset_dir.glob("*.png")):
            with Image.open(png) as img:
                width, height = img.size
            images.append(InputImage(dataset_dir.name, png.stem, png, width, height))
    if not images:
        raise InputSetError(f"no <Dataset>/<stem>.png images under {root}")
    stems: dict[str, str] = {}
    for image in images:
        if image.stem in stems:
            raise InputSetError(
                f"stem {image.stem} appears in both {stems[image.stem]} and {image.dataset}: "
                "stems must be unique across datasets"
            )
        stems[image.stem] = image.dataset
    return images


def check_landmarks_cover(images: list[InputImage], landmarks: dict[str, Landmarks]) -> None:
    missing = [img.relpath for img in images if img.stem not in landmarks]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InputSetError(f"{len(missing)} input(s) have no landmarks: {shown}")
    wrong = [
        f"{img.relpath} (CSV says {landmarks[img.stem].dataset})"
        for img in images
        if landmarks[img.stem].dataset != img.dataset
    ]
    if wrong:
        raise InputSetError(f"landmarks name another dataset for: {', '.join(wrong[:10])}")
