"""Every CSV the platform and the scorer write goes through ``writer``: text cells that a spreadsheet
would run as a formula are neutralised, as OWASP's CSV-injection guidance says.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``,
which spreadsheets show as text and never evaluate. Numbers are never touched, written as numbers or as
the strings ``str(float)`` makes (``-0.25``, ``1e-05``, ``-inf``): eval.py's score CSVs stay bit-identical.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)")


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet reads it safely: a formula-like text cell prefixed with ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose rows pass through ``safe_cell``."""

    def __init__(self, handle: Any, **options: Any) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(handle: Any, **options: Any) -> SafeWriter:
    return SafeWriter(handle, **options)
