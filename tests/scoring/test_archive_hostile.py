"""scoring.archive against hostile or broken submissions.

Every case checks the exact problem codes and paths, and (through ``check``) that the
extraction folder is left empty. Cases that must be decided from the headers alone
forbid reading member bodies (``no_body_reads``), so a bomb costs no decompression.
"""

from __future__ import annotations

import os
import random
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from scoring.archive import ArchiveLimits, ExpectedImage, check_and_extract, folder, images, zipreader
from scoring.archive.members import Member as ArchiveMember
from tests.scoring.test_archive import (
    Member,
    central_records,
    check,
    codes,
    expected_for,
    patch_zip,
    png_bytes,
    raw_png,
    restored,
    write_zip,
    zip_bytes,
)


def forbid(monkeypatch: pytest.MonkeyPatch, stage: str, *paths: str) -> None:
    """Make reading ("read") or decoding ("decode") the given members (all when none given)
    an internal error, which ``check`` rejects: proof that the case was decided earlier."""

    def wanted(path: str) -> bool:
        return not paths or path in paths

    if stage == "read":
        for reader in (zipreader.ZipSource, folder.DirSource):
            real_read = reader.read

            def read(self: object, member: ArchiveMember, _real=real_read):  # type: ignore[no-untyped-def]
                if wanted(member.shown):
                    raise AssertionError(f"the body of {member.shown} was read")
                return _real(self, member)

            monkeypatch.setattr(reader, "read", read)
    real_decode = images.decode_problem

    def decode(data: bytes, image: ExpectedImage):  # type: ignore[no-untyped-def]
        if wanted(image.relpath):
            raise AssertionError(f"{image.relpath} was decoded")
        return real_decode(data, image)

    monkeypatch.setattr(images, "decode_problem", decode)


@pytest.fixture
def no_body_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, "read")


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


# --------------------------------------------------------------------------- bombs and limits


def test_decompression_bomb_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, "decode", "CelebA/b.png")
    images = restored()
    images["CelebA/b.png"] = raw_png(100_000, 100_000, rows=b"\x00" * 1000)
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("too_large", "CelebA/b.png")]
    assert "100000x100000" in report.problems[0].message


def test_zip_bomb_by_ratio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, "read", "CelebA/b.png")
    images = restored()
    images["CelebA/b.png"] = bytes(5 * 1024**2)  # deflates about 1000:1
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("zip_bomb", "CelebA/b.png")]


def test_zip_bomb_by_overall_ratio(tmp_path: Path, no_body_reads: None) -> None:
    # Each member stays under the per-member floor, but together they inflate 1000:1.
    images = restored()
    members = {**images, **{f"CelebA/pad{i}.bin": bytes(512 * 1024) for i in range(8)}}
    report = check(write_zip(tmp_path / "sub.zip", members))
    assert codes(report)[0] == ("zip_bomb", "")
    assert {code for code, _ in codes(report)[1:]} == {"extra"}


def test_zip_bomb_by_total_size(tmp_path: Path, no_body_reads: None) -> None:
    images = restored()
    total = sum(len(data) for data in images.values())
    limits = ArchiveLimits(max_total_uncompressed=total - 1)
    report = check(write_zip(tmp_path / "sub.zip", images), limits=limits)
    assert codes(report) == [("too_large", "")]


def test_member_over_size_limit(tmp_path: Path, no_body_reads: None) -> None:
    images = restored()
    limits = ArchiveLimits(max_member_bytes=len(images["CelebA/b.png"]) - 1)
    report = check(write_zip(tmp_path / "sub.zip", {"CelebA/b.png": images["CelebA/b.png"]}), limits=limits)
    assert ("too_large", "CelebA/b.png") in codes(report)
    assert "missing" not in {code for code, path in codes(report) if path == "CelebA/b.png"}


def test_archive_over_size_limit(tmp_path: Path, no_body_reads: None) -> None:
    source = write_zip(tmp_path / "sub.zip", restored())
    report = check(source, limits=ArchiveLimits(max_archive_bytes=source.stat().st_size - 1))
    assert codes(report) == [("too_large", "")]


def test_declared_size_smaller_than_data(tmp_path: Path) -> None:
    images = restored()
    data = zip_bytes(images)
    data = patch_zip(data, 1, size=40)  # member 1 is CelebA/b.png; it really inflates to ~800 bytes
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    report = check(source)
    assert codes(report) == [("corrupt_zip", "CelebA/b.png")]


def test_overlapping_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, "read", "CelebA/Aaron_Peirsol.png", "CelebA/b.png")
    images = restored()
    data = zip_bytes(images)
    first_offset = struct.unpack_from("<L", data, central_records(data)[0] + 42)[0]
    data = patch_zip(data, 1, offset=first_offset)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    report = check(source)
    assert codes(report) == [("zip_bomb", "CelebA/Aaron_Peirsol.png"), ("zip_bomb", "CelebA/b.png")]


def test_ten_thousand_and_one_members(tmp_path: Path, no_body_reads: None) -> None:
    members = [(f"CelebA/x{i}.png", b"") for i in range(10_001)]
    report = check(write_zip(tmp_path / "sub.zip", members, zipfile.ZIP_STORED))
    assert codes(report) == [("too_many_members", "")]
    assert "10001" in report.problems[0].message


def test_member_count_lie_in_end_record(tmp_path: Path, no_body_reads: None) -> None:
    data = bytearray(zip_bytes([(f"CelebA/x{i}.png", b"") for i in range(12)], zipfile.ZIP_STORED))
    struct.pack_into("<2H", data, len(data) - 14, 3, 3)  # the end record claims 3 entries
    source = tmp_path / "sub.zip"
    source.write_bytes(bytes(data))
    report = check(source, limits=ArchiveLimits(max_members=10))
    assert codes(report) == [("too_many_members", "")]


# --------------------------------------------------------------------------- nested archives


def test_nested_zip_at_an_image_path(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/b.png"] = zip_bytes({"inner.png": png_bytes()})
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("nested_archive", "CelebA/b.png")]


def test_nested_zip_as_extra_member(tmp_path: Path) -> None:
    inner = zip_bytes(restored())
    report = check(write_zip(tmp_path / "sub.zip", {"submission.zip": inner}))
    assert codes(report)[0] == ("nested_archive", "submission.zip")
    assert {code for code, _ in codes(report)[1:]} == {"missing"}


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../evil.png", "path_escape"),
        ("CelebA/../../evil.png", "path_escape"),
        ("/abs.png", "path_escape"),
        ("C:\\x.png", "path_escape"),
        ("C:/x.png", "path_escape"),
        ("..\\evil.png", "path_escape"),
        ("\\\\server\\share\\x.png", "path_escape"),
        ("CelebA\\b.png", "bad_name"),
        ("CelebA/./b.png", "bad_name"),
        ("CelebA//b.png", "bad_name"),
        ("CelebA/b\x00.png", "bad_name"),
        ("CelebA/b\u202egnp.exe", "bad_name"),
        ("CelebA/" + "x" * 300 + ".png", "bad_name"),
    ],
)
def test_unsafe_member_names(tmp_path: Path, name: str, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, "read", name)
    members: list[Member] = [*restored().items()]
    info = zipfile.ZipInfo("CelebA/PLACEHOLDER.png")
    members.append((info, png_bytes()))
    data = zip_bytes(members)
    # zipfile rewrites some names (NUL, os.sep); put the exact bytes in both headers.
    raw = name.encode()
    data = data.replace(b"CelebA/PLACEHOLDER.png", raw) if len(raw) == 22 else _rename(data, raw)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    report = check(source)
    shown = name.replace("\x00", "\\x00").replace("\u202e", "\\u202e")  # escaped for display
    assert codes(report) == [(code, shown)]


def _rename(data: bytes, raw: bytes) -> bytes:
    """Rebuild the zip with the last member renamed to ``raw`` (any length)."""
    import io

    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "CelebA/PLACEHOLDER.png":
                info = zipfile.ZipInfo("P" * len(raw))
            zf.writestr(info, body)
    return out.getvalue().replace(b"P" * len(raw), raw)


def test_symlink_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, "read", "CelebA/b.png")
    images = restored()
    del images["CelebA/b.png"]
    members: list[Member] = [*images.items(), (symlink_info("CelebA/b.png"), b"/etc/passwd")]
    report = check(write_zip(tmp_path / "sub.zip", members))
    assert codes(report) == [("symlink", "CelebA/b.png")]


def test_symlink_inside_junk_folder_is_still_rejected(tmp_path: Path) -> None:
    members: list[Member] = [*restored().items(), (symlink_info("__MACOSX/link"), b"../../etc")]
    report = check(write_zip(tmp_path / "sub.zip", members))
    assert codes(report) == [("symlink", "__MACOSX/link")]


@pytest.mark.parametrize("file_type", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK])
def test_special_members(tmp_path: Path, file_type: int) -> None:
    info = zipfile.ZipInfo("CelebA/dev")
    info.create_system = 3
    info.external_attr = (file_type | 0o644) << 16
    members: list[Member] = [*restored().items(), (info, b"")]
    report = check(write_zip(tmp_path / "sub.zip", members))
    assert codes(report) == [("special_member", "CelebA/dev")]


def test_duplicate_names(tmp_path: Path) -> None:
    images = restored()
    members: list[Member] = [*images.items(), ("CelebA/b.png", png_bytes(seed=99))]
    report = check(write_zip(tmp_path / "sub.zip", members))
    assert codes(report) == [("duplicate", "CelebA/b.png")]


def test_case_duplicates(tmp_path: Path) -> None:
    images = restored()
    members: list[Member] = [*images.items(), ("celeba/B.png", png_bytes(seed=99))]
    report = check(write_zip(tmp_path / "sub.zip", members))
    assert codes(report) == [("case_duplicate", "celeba/B.png")]


def test_name_not_utf8_without_flag(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/zzzz.png"] = png_bytes()
    data = zip_bytes(images).replace(b"CelebA/zzzz.png", b"CelebA/\xe9t\xe9s.png")
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    report = check(source)
    assert codes(report) == [("bad_name_encoding", "CelebA/\ufffdt\ufffds.png")]


def test_name_not_utf8_despite_flag(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/\u00e9.png"] = png_bytes()  # zipfile sets the UTF-8 flag for this name
    data = zip_bytes(images).replace("\u00e9".encode(), b"\xff\xfe")
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    report = check(source)
    assert codes(report) == [("bad_name_encoding", "CelebA/\ufffd\ufffd.png")]


def test_local_header_name_disagrees(tmp_path: Path) -> None:
    images = restored()
    data = zip_bytes(images)
    # Rename the local header of CelebA/b.png only (its first occurrence in the file).
    data = data.replace(b"CelebA/b.png", b"CelebA/x.png", 1)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    report = check(source)
    assert codes(report) == [("corrupt_zip", "CelebA/b.png")]


# --------------------------------------------------------------------------- member encodings


def test_encrypted_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, "read", "LFW-Test/c.png")
    data = zip_bytes(restored())
    data = patch_zip(data, 2, flags=0x1)
    data = patch_zip(data, 2, local=True, flags=0x1)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    report = check(source)
    assert codes(report) == [("encrypted", "LFW-Test/c.png")]


def test_encrypted_only_in_local_header(tmp_path: Path) -> None:
    data = patch_zip(zip_bytes(restored()), 2, local=True, flags=0x1)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    assert codes(check(source)) == [("encrypted", "LFW-Test/c.png")]


# BZip2 (12) and LZMA (14) are read now (tests/scoring/test_archive_tools.py); methods the standard
# library cannot read are still refused from the headers alone: Zstandard (93), XZ (95), PPMd (98).
@pytest.mark.parametrize("method", [93, 95, 98])
def test_unsupported_compression(tmp_path: Path, method: int, no_body_reads: None) -> None:
    data = zip_bytes(restored())
    for index in range(5):
        data = patch_zip(data, index, method=method)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    report = check(source)
    assert {code for code, _ in codes(report)} == {"unsupported_compression"}
    assert len(report.problems) == 5
    assert "zip -r ../results.zip ." in report.problems[0].message


def test_deflate64_method_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid(monkeypatch, "read", "CelebA/Aaron_Peirsol.png")
    data = patch_zip(zip_bytes(restored()), 0, method=9)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    assert codes(check(source)) == [("unsupported_compression", "CelebA/Aaron_Peirsol.png")]


def test_local_method_disagrees(tmp_path: Path) -> None:
    data = patch_zip(zip_bytes(restored()), 0, local=True, method=0)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    assert codes(check(source)) == [("corrupt_zip", "CelebA/Aaron_Peirsol.png")]


def test_bad_crc(tmp_path: Path) -> None:
    data = zip_bytes(restored())
    data = patch_zip(data, 3, crc=0x12345678)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    assert codes(check(source)) == [("corrupt_zip", "LFW-Test/d.png")]


def test_damaged_deflate_stream(tmp_path: Path) -> None:
    images = restored()
    data = bytearray(zip_bytes(images))
    start = 30 + len("CelebA/Aaron_Peirsol.png")
    for i in range(start + 5, start + 40):
        data[i] ^= 0x5A
    source = tmp_path / "sub.zip"
    source.write_bytes(bytes(data))
    assert codes(check(source)) == [("corrupt_zip", "CelebA/Aaron_Peirsol.png")]


# --------------------------------------------------------------------------- whole-archive problems


def test_empty_zip(tmp_path: Path) -> None:
    report = check(write_zip(tmp_path / "sub.zip", {}))
    assert codes(report) == [("empty", "")]


def test_zip_with_only_folders_and_junk(tmp_path: Path) -> None:
    members: list[Member] = [("CelebA/", b""), ("__MACOSX/._x", b"junk"), (".DS_Store", b"junk")]
    assert codes(check(write_zip(tmp_path / "sub.zip", members))) == [("empty", "")]


def test_zero_byte_file(tmp_path: Path) -> None:
    source = tmp_path / "sub.zip"
    source.write_bytes(b"")
    assert codes(check(source)) == [("empty", "")]


def test_truncated_zip(tmp_path: Path) -> None:
    data = zip_bytes(restored())
    source = tmp_path / "sub.zip"
    source.write_bytes(data[: len(data) * 2 // 3])
    assert codes(check(source)) == [("truncated", "")]


def test_central_directory_cut_short(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(restored()))
    cd_size, cd_offset = struct.unpack_from("<2L", data, len(data) - 10)
    struct.pack_into("<L", data, len(data) - 10, cd_size + 1000)  # claims more than there is
    source = tmp_path / "sub.zip"
    source.write_bytes(bytes(data))
    assert codes(check(source)) == [("truncated", "")]


def test_random_bytes_named_zip(tmp_path: Path) -> None:
    rng = random.Random(7)
    source = tmp_path / "sub.zip"
    source.write_bytes(b"\x00" + bytes(rng.randrange(256) for _ in range(4096)))
    report = check(source)
    assert codes(report) == [("not_zip", "")]


@pytest.mark.parametrize(
    ("head", "word"),
    [(b"Rar!\x1a\x07\x01\x00", "RAR"), (b"7z\xbc\xaf\x27\x1c\x00\x04", "7z"), (b"\x1f\x8b\x08\x00", "gzip")],
)
def test_other_archive_formats(tmp_path: Path, head: bytes, word: str) -> None:
    source = tmp_path / "sub.zip"
    source.write_bytes(head + bytes(100))
    report = check(source)
    assert codes(report) == [("not_zip", "")]
    assert word in report.problems[0].message


def test_zip_hidden_after_an_image(tmp_path: Path) -> None:
    source = tmp_path / "sub.zip"
    source.write_bytes(png_bytes() + zip_bytes(restored()))  # a PNG/zip polyglot
    report = check(source)
    assert codes(report) == [("not_zip", "")]
    assert "PNG" in report.problems[0].message


def test_multi_part_zip(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(restored()))
    struct.pack_into("<H", data, len(data) - 18, 1)  # "this is disk 1"
    source = tmp_path / "sub.zip"
    source.write_bytes(bytes(data))
    assert codes(check(source)) == [("corrupt_zip", "")]


def test_missing_source(tmp_path: Path) -> None:
    assert codes(check(tmp_path / "absent.zip", tmp_path=tmp_path)) == [("not_found", "")]


def test_problems_never_leave_files_in_dest(tmp_path: Path) -> None:
    # The first images are valid and written before the last one fails the check.
    images = restored()
    images["Wider-Test/e.png"] = images["Wider-Test/e.png"][:-100]
    dest = tmp_path / "out"
    dest.mkdir()
    report = check_and_extract(write_zip(tmp_path / "sub.zip", images), expected_for(), dest)
    assert codes(report) == [("corrupt_png", "Wider-Test/e.png")]
    assert list(dest.iterdir()) == []


# --------------------------------------------------------------------------- folder submissions


def make_folder(root: Path) -> Path:
    folder = root / "submission"
    for path, data in restored().items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return folder


def test_directory_source_with_symlink(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / "CelebA" / "b.png").unlink()
    (folder / "CelebA" / "b.png").symlink_to("/etc/passwd")
    (folder / "LFW-Test" / "link").symlink_to(folder / "CelebA")
    report = check(folder, tmp_path=tmp_path)
    assert codes(report) == [("symlink", "CelebA/b.png"), ("symlink", "LFW-Test/link")]


def test_directory_source_with_fifo(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    os.mkfifo(folder / "CelebA" / "pipe")
    report = check(folder, tmp_path=tmp_path)
    assert codes(report) == [("special_member", "CelebA/pipe")]


def test_directory_source_with_undecodable_name(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    with open(os.path.join(os.fsencode(folder / "CelebA"), b"\xff.png"), "wb") as handle:
        handle.write(png_bytes())
    report = check(folder, tmp_path=tmp_path)
    assert codes(report) == [("bad_name_encoding", "CelebA/\ufffd.png")]


def test_directory_source_case_duplicates_and_backslash(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / "CelebA" / "B.png").write_bytes(png_bytes())
    (folder / "CelebA" / "x\\y.png").write_bytes(png_bytes())
    report = check(folder, tmp_path=tmp_path)
    # Name problems come first; the exact expected name wins over its case variant.
    assert codes(report) == [("bad_name", "CelebA/x\\y.png"), ("case_duplicate", "CelebA/B.png")]


def test_directory_source_too_many_entries(tmp_path: Path, no_body_reads: None) -> None:
    folder = make_folder(tmp_path)
    report = check(folder, tmp_path=tmp_path, limits=ArchiveLimits(max_members=4))
    assert codes(report) == [("too_many_members", "")]


def test_directory_source_file_grows_past_limit(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    images = restored()
    limit = max(len(data) for data in images.values())
    report = check(folder, tmp_path=tmp_path, limits=ArchiveLimits(max_member_bytes=limit))
    assert report.ok
    (folder / "CelebA" / "b.png").write_bytes(images["CelebA/b.png"] + bytes(limit))
    report = check(folder, tmp_path=tmp_path, limits=ArchiveLimits(max_member_bytes=limit))
    assert codes(report) == [("too_large", "CelebA/b.png")]


def test_empty_directory_source(tmp_path: Path) -> None:
    (tmp_path / "submission").mkdir()
    assert codes(check(tmp_path / "submission", tmp_path=tmp_path)) == [("empty", "")]


def test_dest_write_failure_is_raised_after_cleanup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real_open = open

    def failing_open(file: object, mode: str = "r", *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if mode == "xb":
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(28, "No space left on device")
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", failing_open)
    dest = tmp_path / "out"
    with pytest.raises(OSError, match="No space"):
        check_and_extract(write_zip(tmp_path / "sub.zip", restored()), expected_for(), dest)
    assert not dest.exists()


def test_png_with_a_malformed_chunk_after_the_image_data(tmp_path: Path) -> None:
    # Found by the fuzz run: a short iCCP chunk after IDAT made Pillow raise IndexError.
    import zlib as _zlib

    images = restored()
    png = images["CelebA/b.png"]
    iend = png.rindex(b"IEND") - 4
    body = b"iCCP" + b"x\x00"  # a profile name, then no compression byte where one must be
    chunk = struct.pack(">I", 2) + body + struct.pack(">I", _zlib.crc32(body) & 0xFFFFFFFF)
    images["CelebA/b.png"] = png[:iend] + chunk + png[iend:]
    report = check(write_zip(tmp_path / "sub.zip", images), tmp_path=tmp_path)
    assert codes(report) == [("corrupt_png", "CelebA/b.png")]
