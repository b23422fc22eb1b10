"""scoring.download's own checks: which zip member names it extracts, and what it leaves when it refuses."""

from __future__ import annotations

import zipfile

import pytest

from scoring.download import DownloadError, extract_inputs, member_ok


@pytest.mark.parametrize(("name", "ok"), [
    ("CelebChild-Test/149_Kristen Bell_00.png", True),  # NTIRE's stems hold spaces
    ("LFW-Test/Aaron_Eckhart_0001_00.png", True),
    ("../x.png", False), ("a/../b.png", False), ("/a/b.png", False), ("a/b/c.png", False), ("a.png", False),
    ("a\\b/c.png", False), ("a/.hidden.png", False), ("a/b\u202e.png", False), ("a/b\n.png", False),
    ("a/b.txt", False),
])
def test_member_names(name, ok):
    assert member_ok(name) is ok


def test_a_hostile_member_leaves_nothing(tmp_path):
    archive = tmp_path / "inputs.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("CelebA/a.png", b"png")
        out.writestr("../evil.png", b"png")
    with pytest.raises(DownloadError, match="evil"):
        extract_inputs(archive, tmp_path / "inputs", "0" * 64)
    assert not (tmp_path / "inputs").exists() and not (tmp_path.parent / "evil.png").exists()


def test_extracted_once_and_never_mixed_with_other_files(tmp_path):
    archive = tmp_path / "inputs.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("CelebA/a b.png", b"png")
    dest = extract_inputs(archive, tmp_path / "inputs", "1" * 64)
    assert (dest / "CelebA/a b.png").read_bytes() == b"png"
    assert extract_inputs(archive, tmp_path / "inputs", "1" * 64) == dest  # the same zip: kept as it is
    with pytest.raises(DownloadError, match="holds other files"):
        extract_inputs(archive, tmp_path / "inputs", "2" * 64)  # another zip: refused, not mixed in
