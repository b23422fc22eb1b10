"""scoring.archive.SafeZip: a zip of named files (challenge bundles) under the submission archive rules."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from scoring.archive import ArchiveLimits, ArchiveMemberError, SafeZip


def make(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def test_names_links_twins_and_sizes_are_refused_and_the_rest_is_readable(tmp_path):
    link = zipfile.ZipInfo("inputs/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = make(tmp_path / "b.zip", [
        ("challenge.json", b"{}"), ("../escape.txt", b"x"), ("/abs.txt", b"x"), ("a\\b.txt", b"x"),
        (link, b"/etc/passwd"), ("inputs/A.png", b"1"), ("inputs/a.png", b"2"), ("big.bin", b"0" * 5000),
        ("__MACOSX/._junk", b"x"), ("dir/", b""),
    ])
    with SafeZip(path, ArchiveLimits(max_member_bytes=4096)) as bundle:
        found = {(p.code, p.path) for p in bundle.problems}
        assert found == {("path_escape", "../escape.txt"), ("path_escape", "/abs.txt"), ("bad_name", "a\\b.txt"),
                         ("symlink", "inputs/link.png"), ("case_duplicate", "inputs/a.png"),
                         ("too_large", "big.bin")}
        assert bundle.names() == ["challenge.json", "inputs/A.png"]
        assert bundle.read("challenge.json") == b"{}"
        with pytest.raises(KeyError):
            bundle.read("../escape.txt")  # refused members cannot be read at all


def test_a_damaged_member_is_reported_when_read(tmp_path):
    path = make(tmp_path / "b.zip", [("data.bin", b"payload" * 100)])
    raw = bytearray(path.read_bytes())
    start = raw.index(b"data.bin") + len("data.bin")
    raw[start + 2] ^= 0xFF  # flip bits in the compressed body: inflate or the CRC check fails
    path.write_bytes(bytes(raw))
    with SafeZip(path, ArchiveLimits()) as bundle:
        assert bundle.problems == []
        with pytest.raises(ArchiveMemberError) as damaged:
            bundle.read("data.bin")
        assert damaged.value.problem.code == "corrupt_zip"


def test_not_a_zip_and_over_the_size_limit(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"hello, not a zip")
    assert [p.code for p in SafeZip(tmp_path / "x.zip", ArchiveLimits()).problems] == ["not_zip"]
    path = make(tmp_path / "b.zip", [("a.txt", b"a" * 100)])
    assert [p.code for p in SafeZip(path, ArchiveLimits(max_archive_bytes=10)).problems] == ["too_large"]


def test_an_open_file_is_read_as_a_path_is_and_stays_the_callers(tmp_path):
    """Input-set uploads arrive as open files: the same names and refusals, and the file is not closed."""
    path = make(tmp_path / "b.zip", [("./inputs/a.png", b"1"), ("../escape.txt", b"x"), ("inputs/.DS_Store", b"j")])
    with SafeZip(path, ArchiveLimits()) as by_path:
        expected = (by_path.names(), [(p.code, p.path) for p in by_path.problems])
    assert expected == (["inputs/a.png"], [("path_escape", "../escape.txt")])  # "./" dropped, junk skipped
    with open(path, "rb") as handle:
        with SafeZip(handle, ArchiveLimits()) as by_file:
            assert (by_file.names(), [(p.code, p.path) for p in by_file.problems]) == expected
            assert by_file.read("inputs/a.png") == b"1"
        assert not handle.closed
    with open(path, "rb") as handle:
        refused = SafeZip(handle, ArchiveLimits(max_archive_bytes=10))
        assert [p.code for p in refused.problems] == ["too_large"]
