"""``python -m scoring check``: the check's report printed as text or JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from scoring.archive.check import check_submission
from scoring.archive.report import ArchiveProblem, CheckReport

logger = logging.getLogger(__name__)


def run_check_cli(inputs_dir: Path, source: Path, as_json: bool) -> int:
    """Print the report; 0 when valid, 1 when rejected."""
    try:
        report = check_submission(Path(inputs_dir), Path(source))
    except Exception as exc:  # the CLI promises no traceback
        logger.error("internal error in the check command", exc_info=True)
        problem = ArchiveProblem("unreadable", "", f"internal error: {type(exc).__name__}: {exc}")
        report = CheckReport([problem], 0)
    if as_json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(report.summary())
    return 0 if report.ok else 1
