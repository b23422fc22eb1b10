"""eval.py's two CSV files, written from a ScoreReport.

Layout matches NTIRE 2025's eval.py so existing spreadsheets and scripts keep working:
``csv.writer``'s default dialect (``\\r\\n`` line ends), floats as ``str(float)``, and
``0`` (an int) wherever eval.py's ``metrics.get(key, 0)`` finds nothing.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from scoring import csv_cells
from scoring.profile import ScoringProfile
from scoring.results import ImageResult, ScoreReport

# Our metric names -> eval.py's column names.
COLUMN_NAMES: dict[str, str] = {
    "niqe": "NIQE",
    "clipiqa": "CLIP_IQA",
    "maniqa": "MANIQA",
    "musiq": "MUSIQ",
    "qalign": "QALIGN",
    "fid": "FID",
}
TOTAL_HEADER = (
    "Dataset",
    "NIQE",
    "CLIP_IQA",
    "MANIQA",
    "MUSIQ",
    "QALIGN",
    "FID",
    "ID_Sim",
    "low_ID_Sim",
    "Total",
)
_METRIC_COLUMNS = ("niqe", "clipiqa", "maniqa", "musiq", "qalign", "fid")  # TOTAL_HEADER's order
ALL_ROW = "All"
WEIGHTED_ROW = "Weighted Score"


def eval_csv_names(name: str) -> tuple[str, str]:
    """eval.py's file names for a run called ``name``: (totals, per image)."""
    return f"{name}_total.csv", f"{name}.csv"


def _float(value: Any) -> str:
    # eval.py writes Python/numpy floats, which csv.writer renders with str().
    return str(float(value))


def _metric_cells(values: dict[str, float], skip_fid: bool = False) -> list[Any]:
    return [
        0 if metric not in values or (skip_fid and metric == "fid") else _float(values[metric])
        for metric in _METRIC_COLUMNS
    ]


def _term_cell(profile: ScoringProfile, terms: dict[str, float], metric: str) -> Any:
    if metric not in terms:
        return 0
    value = terms[metric]
    ceilinged = any(t.metric == metric and t.ceiling is not None for t in profile.terms)
    # eval.py's max(0, x) returns the int 0 whenever x <= 0, which csv writes as "0".
    if ceilinged and value == 0:
        return 0
    return _float(value)


def write_total_csv(path: Path | str, report: ScoreReport) -> None:
    """``<name>_total.csv``: a row per dataset, then ``All``, then ``Weighted Score``."""
    profile = ScoringProfile.from_dict(report.profile)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv_cells.writer(handle)
        writer.writerow(TOTAL_HEADER)
        for dataset in report.datasets:
            # eval.py has no per-dataset FID and no per-dataset total: both are written as 0.
            writer.writerow(
                [
                    dataset.dataset,
                    *_metric_cells(dataset.metrics, skip_fid=True),
                    _float(dataset.id_similarity),
                    int(dataset.failed_count),
                    0,
                ]
            )
        writer.writerow(
            [
                ALL_ROW,
                *_metric_cells(report.overall),
                _float(report.id_similarity),
                int(report.failed_count),
                0,
            ]
        )
        writer.writerow(
            [
                WEIGHTED_ROW,
                *(_term_cell(profile, report.terms, m) for m in _METRIC_COLUMNS),
                0,
                0,
                _float(report.total),
            ]
        )


def images_header(profile: ScoringProfile) -> list[str]:
    """``Filename`` then eval.py's sorted per-image keys; QALIGN only when it is computed."""
    keys = {"Dataset", "ID_Sim", *(COLUMN_NAMES[m] for m in profile.iqa_metrics)}
    return ["Filename", *sorted(keys)]


def write_images_csv(path: Path | str, report: ScoreReport) -> None:
    """``<name>.csv``: one row per image, in the report's image order."""
    profile = ScoringProfile.from_dict(report.profile)
    header = images_header(profile)
    by_column = {COLUMN_NAMES[m]: m for m in profile.iqa_metrics}
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv_cells.writer(handle)
        writer.writerow(header)
        for image in report.images:
            row: list[Any] = [f"{image.stem}.png"]
            for column in header[1:]:
                if column == "Dataset":
                    row.append(image.dataset)
                elif column == "ID_Sim":
                    row.append(_float(image.id_similarity))
                else:
                    metric = by_column[column]
                    row.append(_float(image.metrics[metric]) if metric in image.metrics else 0)
            writer.writerow(row)


def read_total_csv(path: Path | str) -> dict[str, dict[str, float]]:
    """Read a ``_total.csv`` back: row name (first column) -> column -> value."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or len(header) < 2:
            raise ValueError(f"{path}: no header row")
        table: dict[str, dict[str, float]] = {}
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path}: line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
                )
            try:
                table[row[0]] = {column: float(cell) for column, cell in zip(header[1:], row[1:])}
            except ValueError:
                raise ValueError(f"{path}: line {reader.line_num}: a value is not a number") from None
    return table


def read_images_csv(path: Path | str, profile: ScoringProfile) -> list[ImageResult]:
    """Read a per-image ``<name>.csv`` back into ImageResults (thresholds from ``profile``), in file order."""
    by_column = {COLUMN_NAMES[m]: m for m in profile.iqa_metrics}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("Filename", "Dataset", "ID_Sim", *by_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns: {', '.join(missing)}")
        images = []
        for row in reader:
            try:
                metrics = {metric: float(row[column]) for column, metric in by_column.items()}
                similarity = float(row["ID_Sim"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}: line {reader.line_num}: a value is not a number") from None
            dataset = row["Dataset"]
            images.append(ImageResult(dataset, Path(row["Filename"]).stem, metrics, similarity,
                                      profile.threshold_for(dataset)))
    if not images:
        raise ValueError(f"{path}: no image rows")
    return images
