"""An organizer's input-set zip, extracted under the naming policy and reader that participants' archives get.

Input sets differ from submissions in three ways, each said where it applies: they are the low-quality
inputs, not restored outputs, so there is no expected list to match (any ``<Dataset>/<stem>.png`` is
taken); their names keep to ``naming.INPUT_NAME``'s portable characters, since they become the expected
names of every submission; and the images are checked as inputs (``scoring.inputs.scan_inputs``) once
extracted, so only the PNG signature is checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from scoring.archive.filetypes import PNG_SIGNATURE
from scoring.archive.members import ArchiveLimits
from scoring.archive.naming import INPUT_NAME, wrapping_folder
from scoring.archive.safezip import ArchiveMemberError, SafeZip
from scoring.inputs import InputSetError

_UNREADABLE = {"not_zip", "truncated", "corrupt_zip", "empty"}  # archive-level: no member could be listed
_SHOWN = 20  # problems listed in the error; the rest are counted


def extract_input_set(source: Path | BinaryIO, dest: Path, limits: ArchiveLimits) -> int:
    """Write each ``<Dataset>/<stem>.png`` member to ``dest/<Dataset>/<stem>.png`` (a name built from the
    checked parts) and return how many; InputSetError lists every problem. On error, what was written under
    ``dest`` is the caller's to remove (it extracts into a scratch folder)."""
    with SafeZip(source, limits) as archive:
        unreadable = [p for p in archive.problems if p.code in _UNREADABLE and not p.path]
        if unreadable:
            raise InputSetError(f"The input set is not a readable zip archive: {unreadable[0].message}")
        problems = [p.message for p in archive.problems]
        names = archive.names()  # junk and folders skipped, "./" dropped (the naming policy)
        top = wrapping_folder([(name.split("/"), "file") for name in names], None)
        wanted: list[tuple[str, str, str]] = []
        for name in names:
            match = INPUT_NAME.match(name[len(top) + 1:] if top else name)
            if match is None:
                problems.append(f"{name} is not <Dataset>/<stem>.png (letters, digits, . _ + - only).")
            else:
                wanted.append((name, match["dataset"], match["stem"]))
        if not wanted and not problems:
            problems.append("The archive holds no <Dataset>/<stem>.png image.")
        _raise_if(problems)
        for name, dataset, stem in wanted:
            target = dest / dataset / f"{stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(target, "xb") as out:
                    head = b""
                    for block in archive.stream(name):
                        if len(head) < len(PNG_SIGNATURE):
                            head += block[: len(PNG_SIGNATURE) - len(head)]
                            if len(head) == len(PNG_SIGNATURE) and head != PNG_SIGNATURE:
                                break
                        out.write(block)
                if head != PNG_SIGNATURE:
                    problems.append(f"{name} is not a PNG file.")
            except ArchiveMemberError as exc:
                problems.append(exc.problem.message)
        _raise_if(problems)
    return len(wanted)


def problem_list(title: str, problems: list[str]) -> str:
    """``title:`` and the first problems one a line, the rest counted: an input-set refusal as organizers see it."""
    more = f"\n... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    return f"{title}:\n" + "\n".join(problems[:_SHOWN]) + more


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise InputSetError(problem_list("The input archive was refused", problems))
