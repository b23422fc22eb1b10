"""What a check reports: the problem codes, one problem, the report and its text and JSON forms.

Readers and rules raise ``Stop`` (the check cannot go on) or ``MemberError`` (one member cannot be
read); the check turns both into ``ArchiveProblem`` entries of a ``CheckReport``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

MAX_REPORTED_PROBLEMS = 200  # the report's problem list never grows past this

# Every code a report can contain (see scoring.archive's docstring).
PROBLEM_CODES = frozenset(
    {
        "missing", "extra", "not_png", "wrong_size", "wrong_mode", "bit_depth", "corrupt_png",
        "path_escape", "bad_name", "bad_name_encoding", "symlink", "special_member", "duplicate",
        "case_duplicate", "directory_expected", "nested_archive", "encrypted", "unsupported_compression",
        "too_many_members", "too_large", "zip_bomb", "not_zip", "truncated", "corrupt_zip", "empty",
        "not_found", "read_error", "bad_inputs", "more_problems", "unreadable",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ArchiveProblem:
    code: str  # stable machine code (see PROBLEM_CODES)
    path: str  # the member path as shown to the user, or "" for archive-level problems
    message: str  # one clear human sentence


@dataclass
class CheckReport:
    problems: list[ArchiveProblem]
    checked_files: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "errors": [asdict(problem) for problem in self.problems],
            "checked_files": self.checked_files,
        }

    def summary(self) -> str:
        if self.ok:
            return f"Submission OK: {self.checked_files} image(s) checked, no problems."
        counts = Counter(problem.code for problem in self.problems)
        lines = [
            f"Submission rejected: {len(self.problems)} problem(s), {self.checked_files} image(s) checked.",
            "Problems by code: " + ", ".join(f"{code}={n}" for code, n in sorted(counts.items())),
        ]
        lines += [f"  [{problem.code}] {problem.message}" for problem in self.problems]
        return "\n".join(lines)


def capped_report(problems: list[ArchiveProblem], checked: int) -> CheckReport:
    """The report, its problem list cut at MAX_REPORTED_PROBLEMS with a ``more_problems`` entry counting the rest."""
    if len(problems) > MAX_REPORTED_PROBLEMS:
        kept, rest = problems[: MAX_REPORTED_PROBLEMS - 1], problems[MAX_REPORTED_PROBLEMS - 1 :]
        counts = ", ".join(f"{code}: {n}" for code, n in sorted(Counter(p.code for p in rest).items()))
        more = ArchiveProblem("more_problems", "", f"... and {len(rest)} more problems ({counts}).")
        problems = [*kept, more]
    return CheckReport(list(problems), checked)


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


class Stop(Exception):
    """The check cannot go on (unreadable archive, limit exceeded)."""

    def __init__(self, code: str, message: str, path: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.path = code, message, path


class MemberError(Exception):
    """One member cannot be read; the others can still be checked."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
