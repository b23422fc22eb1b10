"""Check a participant's submission archive and extract it safely; read organizers' zips under the same rules.

A submission is a zip file (or, for the CLI, a folder) of restored images laid out
``<Dataset>/<stem>.png``, exactly one per low-quality input of the phase. The check
reports *every* problem it finds, each with a stable machine ``code``, the member
path and a human sentence, and never raises for any input bytes. Nothing is ever
written under a name taken from the archive, and archive-level limits stop the check
before member bodies are read, so hostile archives cost time proportional to their headers.

One module per job:

========================  ==================================================================
``zipreader``             the zip's central directory and bounded member reads
``folder``                a participant's folder (the CLI), read without following links
``members``               what the readers list, and the limits (``ArchiveLimits``)
``naming``                the naming policy: ``<Dataset>/<stem>.png``, prefixes, junk files
``images``                the PNG checks (Pillow)
``check``                 the submission check that ties them together
``extract``               writing checked images under their expected names
``safezip``               any zip of named files (challenge bundles, input sets)
``input_set``             an organizer's input-set zip, extracted under the same policy
``report`` / ``cli``      problems, the report, its text and JSON; ``python -m scoring check``
========================  ==================================================================

Problem codes (stable): ``missing``, ``extra``, ``not_png``, ``wrong_size``,
``wrong_mode``, ``bit_depth``, ``corrupt_png``, ``path_escape``, ``bad_name``,
``bad_name_encoding``, ``symlink``, ``special_member``, ``duplicate``,
``case_duplicate``, ``directory_expected``, ``nested_archive``, ``encrypted``,
``unsupported_compression``, ``too_many_members``, ``too_large`` (archive, member,
total or image pixels over a limit), ``zip_bomb`` (compression ratio, overlapping
members), ``not_zip``, ``truncated``, ``corrupt_zip``, ``empty``, ``not_found``,
``read_error`` (the operating system could not read a file), ``bad_inputs`` (CLI:
the organisers' input folder is unusable), ``more_problems`` (the list was capped)
and ``unreadable`` (an internal error; a bug to report, never expected).
"""

from __future__ import annotations

import logging

from scoring.archive.check import check_and_extract, check_submission, expected_from_inputs
from scoring.archive.cli import run_check_cli
from scoring.archive.members import RATIO_CHECK_FLOOR, ArchiveLimits
from scoring.archive.naming import ExpectedImage
from scoring.archive.report import MAX_REPORTED_PROBLEMS, PROBLEM_CODES, ArchiveProblem, CheckReport
from scoring.archive.safezip import ArchiveMemberError, SafeZip
from scoring.archive.zipreader import REZIP_HELP

# A library must not print tracebacks through logging's last-resort handler (the CLI
# promises none); applications that configure logging still receive the records.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "MAX_REPORTED_PROBLEMS", "PROBLEM_CODES", "RATIO_CHECK_FLOOR", "REZIP_HELP", "ArchiveLimits",
    "ArchiveMemberError", "ArchiveProblem", "CheckReport", "ExpectedImage", "SafeZip", "check_and_extract",
    "check_submission", "expected_from_inputs", "run_check_cli",
]
