"""One naming policy for participants' archives and organizers' input sets (scoring.archive.naming).

The same junk entry is ignored, the same bad name refused with the same reason, and the same bsdtar
``./`` prefix accepted, whether the zip is a submission (check_and_extract) or an input set
(extract_input_set, which organizers.services uses).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.archive import ArchiveLimits, check_and_extract
from scoring.archive.input_set import extract_input_set
from scoring.inputs import InputSetError
from tests.scoring.test_archive import codes, expected_for, restored, write_zip

JUNK = ["__MACOSX/CelebA/._b.png", "CelebA/.DS_Store", "Thumbs.db", "LFW-Test/desktop.ini", "CelebA/._b.png"]
BAD_NAMES = {
    "../CelebA/x.png": ("path_escape", "contains '..'"),
    "/CelebA/x.png": ("path_escape", "is an absolute path"),
    "C:/CelebA/x.png": ("path_escape", "starts with a drive letter"),
    "CelebA\\x.png": ("bad_name", "contains a backslash"),
    "CelebA//x.png": ("bad_name", "has an empty or '.' path component"),
    "CelebA/x\u202e.png": ("bad_name", "contains control or invisible formatting characters"),
}


def input_set(tmp_path: Path, extra: dict[str, bytes]) -> tuple[int, list[str]]:
    """How many images the input-set reader extracts from a valid set plus ``extra`` (and what it wrote)."""
    source = write_zip(tmp_path / "inputs.zip", {**restored(), **extra})
    dest = tmp_path / "extracted"
    dest.mkdir()
    count = extract_input_set(source, dest, ArchiveLimits())
    return count, sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


@pytest.mark.parametrize("junk", JUNK)
def test_the_same_junk_entry_is_ignored_by_both_paths(tmp_path: Path, junk: str) -> None:
    submission = write_zip(tmp_path / "sub.zip", {**restored(), junk: b"clutter"})
    report = check_and_extract(submission, expected_for(), tmp_path / "out")
    assert report.ok, report.summary()
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")) == sorted(restored())

    count, written = input_set(tmp_path, {junk: b"clutter"})
    assert count == len(restored())
    assert written == sorted(restored())  # the junk entry is neither extracted nor refused


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_the_same_bad_name_is_refused_by_both_paths_for_the_same_reason(tmp_path: Path, name: str) -> None:
    code, reason = BAD_NAMES[name]
    # zipfile rewrites a backslash on Windows only and keeps the other names as they are.
    submission = write_zip(tmp_path / "sub.zip", {**restored(), name: b"\x89PNG\r\n\x1a\n"})
    report = check_and_extract(submission, expected_for(), tmp_path / "out")
    assert [(p.code, p.path) for p in report.problems] == [(code, name.replace("\u202e", "\\u202e"))]
    assert reason in report.problems[0].message
    assert not (tmp_path / "out").exists()

    with pytest.raises(InputSetError) as refused:
        input_set(tmp_path, {name: b"\x89PNG\r\n\x1a\n"})
    assert reason in str(refused.value)
    assert name.replace("\u202e", "\\u202e") in str(refused.value)


def test_bsdtar_dot_prefixes_and_a_wrapping_folder_are_accepted_by_both_paths(tmp_path: Path) -> None:
    # Windows' `tar -a` and macOS' bsdtar write "./<path>"; zipping the folder itself adds one top folder.
    prefixed = {f"./results/{path}": data for path, data in restored().items()}
    report = check_and_extract(write_zip(tmp_path / "sub.zip", prefixed), expected_for())
    assert report.ok, report.summary()
    source = write_zip(tmp_path / "prefixed.zip", prefixed)
    dest = tmp_path / "prefixed"
    dest.mkdir()
    assert extract_input_set(source, dest, ArchiveLimits()) == len(restored())
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.png")) == sorted(restored())


def test_the_same_case_twin_is_refused_by_both_paths(tmp_path: Path) -> None:
    """Names that differ only by case clash on Windows and macOS: refused in both."""
    twin = {**restored(), "celeba/B.png": restored()["CelebA/b.png"]}
    assert ("case_duplicate", "celeba/B.png") in codes(check_and_extract(write_zip(tmp_path / "s.zip", twin),
                                                                         expected_for()))
    with pytest.raises(InputSetError, match="celeba/B.png clashes with CelebA/b.png"):
        input_set(tmp_path, {"celeba/B.png": restored()["CelebA/b.png"]})
