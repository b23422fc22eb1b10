"""Ranking entries by total score, as NTIRE 2025's Table 1 does.

Only entries with at most ``max_failed`` identity failures are ranked; the others are
listed after them without a rank.  Ranks are distinct (1, 2, 3, ...): equal totals are
ordered by the caller's tie-break key, never shared.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scoring.aggregate import weighted_terms, weighted_total
from scoring.profile import get_profile


@dataclass(frozen=True)
class ScoredEntry:
    """An input to :func:`rank_entries`.

    ``tiebreak`` orders entries with equal totals, smaller first (e.g. ``(submitted_at,
    team)``); entries equal in total and tie-break keep their input order.  ``ref`` is the
    caller's handle (a submission id, say), passed through to the result untouched.
    """

    team: str
    total: float | None
    failed_images: int
    tiebreak: tuple[Any, ...] = ()
    ref: Any = None


@dataclass
class RankedEntry:
    team: str
    total: float  # NaN when the entry has no score
    rank: int | None  # None for invalid or unscored entries
    valid: bool  # failed_images <= max_failed
    failed_images: int
    ref: Any = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        # JSON has no NaN: an unscored total is written as null.
        total = self.total if math.isfinite(self.total) else None
        return {
            "team": self.team,
            "total": total,
            "rank": self.rank,
            "valid": self.valid,
            "failed_images": self.failed_images,
        }


def _as_total(value: float | None) -> float:
    if value is None:
        return math.nan
    return float(value)


def rank_entries(entries: Iterable[ScoredEntry], max_failed: int = 10) -> list[RankedEntry]:
    """Rank valid, scored entries by total (higher first); list the rest after them.

    Order: ranked entries; valid entries without a finite total; invalid entries by total;
    invalid entries without a finite total.  Only the first group gets ranks.
    """
    items = list(entries)

    def order(item: ScoredEntry) -> tuple[Any, ...]:
        total = _as_total(item.total)
        scored = not math.isnan(total)
        valid = item.failed_images <= max_failed
        # NaN compares false with everything, so it must never reach the sort key itself.
        return (not valid, not scored, -total if scored else 0.0, item.tiebreak)

    ranked: list[RankedEntry] = []
    next_rank = 1
    for item in sorted(items, key=order):  # sorted() is stable: full ties keep input order
        total = _as_total(item.total)
        valid = item.failed_images <= max_failed
        rank = None
        if valid and not math.isnan(total):
            rank = next_rank
            next_rank += 1
        ranked.append(RankedEntry(item.team, total, rank, valid, item.failed_images, ref=item.ref))
    return ranked


def _parse_float(text: str | None, column: str, line: int, path: Path) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        raise ValueError(f"{path}: line {line}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}: line {line}: column {column!r} is not a finite number: {text!r}")
    return value


def _parse_count(text: str | None, column: str, line: int, path: Path) -> int:
    value = _parse_float(text, column, line, path)
    if value < 0 or not value.is_integer():
        raise ValueError(f"{path}: line {line}: column {column!r} is not a whole count: {text!r}")
    return int(value)


def rank_table(
    csv_path: Path | str, profile_name: str = "ntire2025", max_failed: int = 10
) -> list[RankedEntry]:
    """Recompute each row's total from its metric columns and rank the rows.

    The CSV needs ``team``, ``failed_images`` and a column per metric of the profile (the
    layout of NTIRE 2025's Table 1); other columns are ignored.  Equal totals are ordered
    by team name, then by row order.
    """
    path = Path(csv_path)
    profile = get_profile(profile_name)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        needed = ("team", *profile.metrics, "failed_images")
        missing = [c for c in needed if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing columns: {', '.join(missing)}")
        entries: list[ScoredEntry] = []
        for row in reader:
            line = reader.line_num
            if None in row:
                raise ValueError(f"{path}: line {line}: more fields than the header has")
            team = (row["team"] or "").strip()
            if not team:
                raise ValueError(f"{path}: line {line}: column 'team' is empty")
            overall = {m: _parse_float(row[m], m, line, path) for m in profile.metrics}
            failed = _parse_count(row["failed_images"], "failed_images", line, path)
            total = weighted_total(weighted_terms(profile, overall))
            entries.append(ScoredEntry(team=team, total=total, failed_images=failed, tiebreak=(team,)))
    return rank_entries(entries, max_failed=max_failed)


def format_table(ranked: list[RankedEntry]) -> str:
    """An aligned plain-text table: rank, team, total, failed images, validity."""
    header = ("Rank", "Team", "Total", "Failed", "Valid")
    rows = [
        (
            "-" if e.rank is None else str(e.rank),
            e.team,
            f"{e.total:.4f}" if math.isfinite(e.total) else "-",
            str(e.failed_images),
            "yes" if e.valid else "no",
        )
        for e in ranked
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    # Numbers right-aligned, text left-aligned.
    align = (">", "<", ">", ">", "<")
    lines = [
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(r, align, widths)).rstrip() for r in (header, *rows)
    ]
    return "\n".join(lines)


def run_rank_cli(csv_path: Path, max_failed: int, as_json: bool, profile_name: str = "ntire2025") -> int:
    """``python -m scoring rank``: print the ranking; 1 with a one-line error on bad input."""
    try:
        ranked = rank_table(csv_path, profile_name=profile_name, max_failed=max_failed)
    except (OSError, ValueError, KeyError, csv.Error) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps([e.to_json() for e in ranked], indent=2))
    else:
        print(format_table(ranked))
    return 0
