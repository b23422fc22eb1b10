"""scoring.archive: what a valid submission looks like, and the ordinary mistakes.

The helpers at the top are shared with test_archive_hostile.py and test_archive_fuzz.py.
"""

from __future__ import annotations

import io
import json
import random
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from scoring.archive import (
    MAX_REPORTED_PROBLEMS,
    ArchiveLimits,
    ArchiveProblem,
    CheckReport,
    ExpectedImage,
    check_and_extract,
    check_submission,
    expected_from_inputs,
    run_check_cli,
)
from scoring.inputs import scan_inputs

# --------------------------------------------------------------------------- helpers

SIZE = (16, 16)
DATASETS: dict[str, list[str]] = {
    "CelebA": ["Aaron_Peirsol", "b"],
    "LFW-Test": ["c", "d"],
    "Wider-Test": ["e"],
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def relpaths(datasets: dict[str, list[str]] = DATASETS) -> list[str]:
    return [f"{dataset}/{stem}.png" for dataset, stems in datasets.items() for stem in stems]


def expected_for(datasets: dict[str, list[str]] = DATASETS, size: tuple[int, int] = SIZE) -> list[ExpectedImage]:
    return [ExpectedImage(path, *size) for path in relpaths(datasets)]


def png_bytes(size: tuple[int, int] = SIZE, mode: str = "RGB", seed: int = 0) -> bytes:
    """A small noisy PNG (noise so that it does not compress to nothing)."""
    rng = random.Random(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    if mode == "I;16":
        image = Image.new(mode, size)
        image.putdata([rng.randrange(65536) for _ in range(size[0] * size[1])])
    else:
        raw = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * bands))
        image = Image.frombytes(mode, size, raw)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def raw_png(width: int, height: int, depth: int = 8, colour: int = 2, rows: bytes | None = None) -> bytes:
    """A hand-made PNG; ``rows`` is the raw scanline data (defaults to all-zero rows)."""
    if rows is None:
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
        row = b"\x00" + bytes((width * channels * depth + 7) // 8)
        rows = row * height
    ihdr = struct.pack(">2I5B", width, height, depth, colour, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


def restored(datasets: dict[str, list[str]] = DATASETS, size: tuple[int, int] = SIZE) -> dict[str, bytes]:
    """A valid set of restored images, keyed by relative path."""
    return {path: png_bytes(size, seed=i) for i, path in enumerate(relpaths(datasets))}


def make_inputs(root: Path, datasets: dict[str, list[str]] = DATASETS, size: tuple[int, int] = SIZE) -> Path:
    """Write an input set (the low-quality images) under ``root/inputs``."""
    inputs = root / "inputs"
    for i, path in enumerate(relpaths(datasets)):
        target = inputs / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png_bytes(size, seed=1000 + i))
    return inputs


Member = tuple[str | zipfile.ZipInfo, bytes]


def zip_bytes(members: Iterable[Member] | dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    items = members.items() if isinstance(members, dict) else members
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests want
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in items:
                zf.writestr(name, data)
    return buf.getvalue()


def write_zip(
    path: Path, members: Iterable[Member] | dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    path.write_bytes(zip_bytes(members, compression))
    return path


@dataclass
class RawEntry:
    """One member for ``build_zip``: every header field is under the test's control."""

    name: bytes
    data: bytes = b""
    method: int = 8  # 8 deflates ``data``; any other value stores it as is under that method id
    flags: int = 0
    external: int = 0
    system: int = 3  # "version made by" host: 0 MS-DOS, 3 Unix
    crc_xor: int = 0  # nonzero: a wrong CRC
    size_delta: int = 0  # added to the true sizes: lying headers
    packed_delta: int = 0
    extra: bytes = b""


def build_zip(entries: Iterable[RawEntry], zip64: bool = False, comment: bytes = b"") -> bytes:
    """Write a zip by hand (zipfile cannot write the odd headers some tests need).

    ``zip64`` moves every size and offset to ZIP64 extra fields and adds the ZIP64 end records.
    """
    out, central, count = bytearray(), bytearray(), 0
    for entry in entries:
        count += 1
        if entry.method == 8:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            packed = packer.compress(entry.data) + packer.flush()
        else:
            packed = entry.data
        crc = (zlib.crc32(entry.data) ^ entry.crc_xor) & 0xFFFFFFFF
        size = (len(entry.data) + entry.size_delta) & 0xFFFFFFFF
        packed_size = (len(packed) + entry.packed_delta) & 0xFFFFFFFF
        offset = len(out)
        extra = entry.extra
        fields = (size, packed_size, offset)
        if zip64:
            extra = struct.pack("<2H3Q", 1, 24, size, packed_size, offset) + extra
            fields = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        name, flags, method = entry.name, entry.flags & 0xFFFF, entry.method & 0xFFFF
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, fields[1], fields[0],
                           len(name), len(extra)) + name + extra + packed  # fmt: skip
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", (entry.system & 0xFF) << 8 | 20, 20, flags, method,
                               0, 0x21, crc, fields[1], fields[0], len(name), len(extra), 0, 0, 0,
                               entry.external & 0xFFFFFFFF, fields[2]) + name + extra  # fmt: skip
    cd_offset = len(out)
    out += central
    if zip64:
        zip64_offset = len(out)
        out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), cd_offset)
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_offset, 1)
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, len(comment))
    else:
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count & 0xFFFF, count & 0xFFFF, len(central),
                           cd_offset, len(comment))  # fmt: skip
    return bytes(out + comment)


def central_records(data: bytes) -> list[int]:
    """Offsets of the central directory records of a zip written by ``zip_bytes``."""
    cd_offset = struct.unpack_from("<L", data, len(data) - 6)[0]
    offsets, pos = [], cd_offset
    while data[pos : pos + 4] == b"PK\x01\x02":
        offsets.append(pos)
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, pos + 28)
        pos += 46 + name_len + extra_len + comment_len
    return offsets


# Field offsets inside a central directory record and a local header.
CENTRAL_FIELDS = {"flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<L"), "packed": (20, "<L"),
                  "size": (24, "<L"), "external": (38, "<L"), "offset": (42, "<L")}  # fmt: skip
LOCAL_FIELDS = {"flags": (6, "<H"), "method": (8, "<H")}


def patch_zip(data: bytes, index: int, local: bool = False, **values: int) -> bytes:
    """Overwrite header fields of member ``index`` (in the central directory, or its local header)."""
    out = bytearray(data)
    record = central_records(data)[index]
    if local:
        base, fields = struct.unpack_from("<L", data, record + 42)[0], LOCAL_FIELDS
    else:
        base, fields = record, CENTRAL_FIELDS
    for name, value in values.items():
        offset, fmt = fields[name]
        struct.pack_into(fmt, out, base + offset, value)
    return bytes(out)


def check(
    source: Path,
    expected: list[ExpectedImage] | None = None,
    tmp_path: Path | None = None,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008
) -> CheckReport:
    """check_and_extract with an extraction folder; a rejected check must leave nothing there."""
    dest = Path(tempfile.mkdtemp(prefix="extracted-", dir=tmp_path or source.parent))
    report = check_and_extract(source, expected_for() if expected is None else expected, dest, limits)
    assert isinstance(report, CheckReport)
    assert all(p.code != "unreadable" for p in report.problems), report.summary()
    if not report.ok:
        assert not dest.exists() or not any(dest.iterdir()), "a rejected check left files behind"
    return report


def codes(report: CheckReport) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in report.problems]


# --------------------------------------------------------------------------- valid submissions


def test_valid_archive_passes_and_extracts_identical_pngs(tmp_path: Path) -> None:
    images = restored()
    source = write_zip(tmp_path / "sub.zip", images)
    dest = tmp_path / "out"
    report = check_and_extract(source, expected_for(), dest)
    assert report.ok, report.summary()
    assert report.problems == []
    assert report.checked_files == len(images)
    extracted = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert extracted == images


def test_valid_archive_without_dest_writes_nothing(tmp_path: Path) -> None:
    source = write_zip(tmp_path / "sub.zip", restored())
    report = check_and_extract(source, expected_for())
    assert report.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.zip"]


def test_stored_members_are_accepted(tmp_path: Path) -> None:
    source = write_zip(tmp_path / "sub.zip", restored(), zipfile.ZIP_STORED)
    assert check(source).ok


def test_hand_built_zip_passes(tmp_path: Path) -> None:
    images = restored()
    source = tmp_path / "sub.zip"
    source.write_bytes(build_zip([RawEntry(path.encode(), data) for path, data in images.items()]))
    assert check(source).ok


def test_zip64_headers_are_understood(tmp_path: Path) -> None:
    images = restored()
    entries = [RawEntry(path.encode(), data, method=i % 2 * 8) for i, (path, data) in enumerate(images.items())]
    source = tmp_path / "sub.zip"
    source.write_bytes(build_zip(entries, zip64=True, comment=b"made by a test"))
    dest = tmp_path / "out"
    report = check_and_extract(source, expected_for(), dest)
    assert report.ok, report.summary()
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*.png")} == images


def test_extension_does_not_matter_for_the_archive(tmp_path: Path) -> None:
    source = write_zip(tmp_path / "submission.bin", restored())
    assert check(source).ok


def test_wrapping_folder_directory_entries_and_os_junk_are_allowed(tmp_path: Path) -> None:
    images = restored()
    members: list[Member] = [("results/", b""), ("results/.DS_Store", b"\x00\x00\x00\x01Bud1")]
    for path, data in images.items():
        dataset = path.split("/")[0]
        members += [
            (f"results/{dataset}/", b""),
            (f"results/{path}", data),
            (f"__MACOSX/results/{dataset}/._{path.split('/')[1]}", b"\x00\x05\x16\x07junk"),
        ]
    members.append(("results/CelebA/Thumbs.db", b"junk"))
    source = write_zip(tmp_path / "sub.zip", members)
    dest = tmp_path / "out"
    report = check_and_extract(source, expected_for(), dest)
    assert report.ok, report.summary()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.png")) == sorted(images)


def test_dataset_folder_is_not_mistaken_for_a_wrapper(tmp_path: Path) -> None:
    datasets = {"CelebA": ["a", "b"]}
    source = write_zip(tmp_path / "sub.zip", restored(datasets))
    assert check(source, expected_for(datasets)).ok


def test_only_one_wrapping_folder_is_stripped(tmp_path: Path) -> None:
    images = {f"a/b/{path}": data for path, data in restored().items()}
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert {code for code, _ in codes(report)} == {"extra", "missing"}


def test_macos_decomposed_names_match(tmp_path: Path) -> None:
    datasets = {"CelebA": ["Jos\u00e9"]}  # NFC, as the organisers' file is named
    images = restored(datasets)
    nfd = {"CelebA/Jose\u0301.png": images["CelebA/Jos\u00e9.png"]}
    data = zip_bytes(nfd)
    data = patch_zip(data, 0, flags=0)  # macOS Archive Utility does not set the UTF-8 flag
    data = patch_zip(data, 0, local=True, flags=0)
    source = tmp_path / "sub.zip"
    source.write_bytes(data)
    dest = tmp_path / "out"
    report = check_and_extract(source, expected_for(datasets), dest)
    assert report.ok, report.summary()
    assert (dest / "CelebA" / "Jos\u00e9.png").read_bytes() == nfd["CelebA/Jose\u0301.png"]


def test_interlaced_png_is_accepted(tmp_path: Path) -> None:
    # Adam7 passes of a 16x16 image: (width, height) of each, every row led by filter byte 0.
    rows = b"".join((b"\x00" + bytes(3 * w)) * h for w, h in ((2, 2), (2, 2), (4, 2), (4, 4), (8, 4), (8, 8), (16, 8)))
    interlaced = bytearray(raw_png(*SIZE, rows=rows))
    interlaced[28] = 1  # IHDR interlace method: Adam7
    struct.pack_into(">I", interlaced, 29, zlib.crc32(bytes(interlaced[12:29])))
    images = restored()
    images["CelebA/b.png"] = bytes(interlaced)
    assert check(write_zip(tmp_path / "sub.zip", images)).ok


@pytest.mark.parametrize("offset, value", [(26, 1), (27, 1), (28, 2)])  # compression, filter, interlace
def test_unknown_ihdr_methods_are_corrupt_png(tmp_path: Path, offset: int, value: int) -> None:
    # Pillow decodes these anyway; libpng refuses them, so a scorer reading with OpenCV would fail later.
    damaged = bytearray(raw_png(*SIZE))
    damaged[offset] = value
    struct.pack_into(">I", damaged, 29, zlib.crc32(bytes(damaged[12:29])))
    images = restored()
    images["CelebA/b.png"] = bytes(damaged)
    assert codes(check(write_zip(tmp_path / "sub.zip", images))) == [("corrupt_png", "CelebA/b.png")]


def test_declared_size_reads_a_streamed_pngs_header() -> None:
    from scoring.archive.images import declared_size

    head = png_bytes((20, 12))[:24]
    assert declared_size(head) == (20, 12)
    assert declared_size(head[:23]) is None  # cut short
    assert declared_size(b"GIF89a" + head[6:]) is None
    assert declared_size(head[:12] + b"IDAT" + head[16:]) is None  # IHDR must come first


def test_directory_source_passes_and_extracts(tmp_path: Path) -> None:
    images = restored()
    folder = tmp_path / "submission"
    for path, data in images.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    (folder / ".DS_Store").write_bytes(b"junk")
    dest = tmp_path / "out"
    report = check_and_extract(folder, expected_for(), dest)
    assert report.ok, report.summary()
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*.png")} == images


def test_directory_source_with_wrapping_folder(tmp_path: Path) -> None:
    folder = tmp_path / "submission"
    for path, data in restored().items():
        (folder / "results" / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / "results" / path).write_bytes(data)
    assert check(folder).ok


def test_expected_from_inputs_uses_input_sizes(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path, size=(24, 20))
    expected = expected_from_inputs(scan_inputs(inputs))
    assert expected == expected_for(size=(24, 20))


def test_check_submission_matches_inputs(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path)
    assert check_submission(inputs, write_zip(tmp_path / "sub.zip", restored())).ok
    report = check_submission(inputs, write_zip(tmp_path / "small.zip", restored(size=(8, 8))))
    assert {code for code, _ in codes(report)} == {"wrong_size"}


def test_nonempty_dest_is_a_caller_error(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("x")
    with pytest.raises(ValueError, match="empty"):
        check_and_extract(write_zip(tmp_path / "sub.zip", restored()), expected_for(), dest)


def test_bad_expected_list_is_a_caller_error(tmp_path: Path) -> None:
    source = write_zip(tmp_path / "sub.zip", restored())
    with pytest.raises(ValueError):
        check_and_extract(source, [ExpectedImage("../x.png", 16, 16)])
    with pytest.raises(ValueError):
        check_and_extract(source, [ExpectedImage("CelebA/x.png", 16, 16)] * 2)


# --------------------------------------------------------------------------- ordinary mistakes


def test_missing_image(tmp_path: Path) -> None:
    images = restored()
    del images["LFW-Test/c.png"]
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("missing", "LFW-Test/c.png")]
    assert report.problems[0].message == "LFW-Test/c.png is missing from the submission."


def test_extra_file(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/notes.txt"] = b"hello"
    images["readme.md"] = b"hi"
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("extra", "CelebA/notes.txt"), ("extra", "readme.md")]


def test_extra_hints(tmp_path: Path) -> None:
    images = restored()
    data = images.pop("CelebA/b.png")
    images["b.png"] = data  # outside its dataset folder
    jpeg = images.pop("LFW-Test/c.png")
    images["LFW-Test/c.jpg"] = jpeg
    images["lfw-test/d.png"] = images.pop("LFW-Test/d.png")
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [
        ("extra", "b.png"),
        ("extra", "LFW-Test/c.jpg"),
        ("extra", "lfw-test/d.png"),
        ("missing", "CelebA/b.png"),
        ("missing", "LFW-Test/c.png"),
        ("missing", "LFW-Test/d.png"),
    ]
    messages = [p.message for p in report.problems]
    assert "belongs in its dataset folder, as CelebA/b.png" in messages[0]
    assert "only PNG files are accepted, as LFW-Test/c.png" in messages[1]
    assert "did you mean LFW-Test/d.png" in messages[2]


def test_wrong_size(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/Aaron_Peirsol.png"] = png_bytes((8, 8))
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("wrong_size", "CelebA/Aaron_Peirsol.png")]
    assert report.problems[0].message == "CelebA/Aaron_Peirsol.png is 8x8; expected 16x16 like its input."


@pytest.mark.parametrize(
    ("mode", "word"),
    [("RGBA", "RGBA"), ("L", "grayscale"), ("P", "palette"), ("LA", "grayscale with alpha"), ("I;16", "16-bit")],
)
def test_wrong_mode(tmp_path: Path, mode: str, word: str) -> None:
    images = restored()
    images["LFW-Test/d.png"] = png_bytes(mode=mode)
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("wrong_mode", "LFW-Test/d.png")]
    assert word in report.problems[0].message


def test_wrong_mode_and_size_are_both_reported(tmp_path: Path) -> None:
    images = restored()
    images["LFW-Test/d.png"] = png_bytes((8, 8), mode="RGBA")
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("wrong_mode", "LFW-Test/d.png"), ("wrong_size", "LFW-Test/d.png")]


def test_16_bit_rgb(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/b.png"] = raw_png(*SIZE, depth=16)
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("bit_depth", "CelebA/b.png")]


def test_jpeg_renamed_to_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", SIZE).save(buf, format="JPEG")
    images = restored()
    images["CelebA/b.png"] = buf.getvalue()
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("not_png", "CelebA/b.png")]
    assert "JPEG" in report.problems[0].message


def test_text_file_named_png(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/b.png"] = b"this is not an image at all, sorry"
    assert codes(check(write_zip(tmp_path / "sub.zip", images))) == [("not_png", "CelebA/b.png")]


def test_truncated_png(tmp_path: Path) -> None:
    images = restored()
    images["Wider-Test/e.png"] = images["Wider-Test/e.png"][:-200]
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("corrupt_png", "Wider-Test/e.png")]


def test_png_with_damaged_pixel_data(tmp_path: Path) -> None:
    images = restored()
    data = bytearray(images["Wider-Test/e.png"])
    data[60] ^= 0xFF  # inside IDAT: the chunk CRC no longer matches
    images["Wider-Test/e.png"] = bytes(data)
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("corrupt_png", "Wider-Test/e.png")]


def test_png_header_only(tmp_path: Path) -> None:
    images = restored()
    images["Wider-Test/e.png"] = images["Wider-Test/e.png"][:20]
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("corrupt_png", "Wider-Test/e.png")]


def test_zero_byte_image(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/b.png"] = b""
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [("not_png", "CelebA/b.png")]
    assert "empty" in report.problems[0].message


def test_all_problems_are_reported_in_one_go(tmp_path: Path) -> None:
    images = restored()
    images["CelebA/b.png"] = png_bytes((8, 8))
    images["LFW-Test/c.png"] = png_bytes(mode="RGBA")
    del images["Wider-Test/e.png"]
    images["extra.txt"] = b"x"
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert codes(report) == [
        ("extra", "extra.txt"),
        ("missing", "Wider-Test/e.png"),
        ("wrong_size", "CelebA/b.png"),
        ("wrong_mode", "LFW-Test/c.png"),
    ]
    assert report.checked_files == 4


def test_problem_list_is_capped(tmp_path: Path) -> None:
    images = restored()
    for i in range(300):
        images[f"CelebA/extra_{i:03}.txt"] = b"x"
    report = check(write_zip(tmp_path / "sub.zip", images))
    assert len(report.problems) == MAX_REPORTED_PROBLEMS
    assert report.problems[-1].code == "more_problems"
    assert "101 more problems (extra: 101)" in report.problems[-1].message


def test_file_where_a_folder_is_expected(tmp_path: Path) -> None:
    images = restored()
    members: list[Member] = [*images.items(), ("CelebA/b.png/x.png", b"x")]
    report = check(write_zip(tmp_path / "sub.zip", members))
    assert codes(report) == [("directory_expected", "CelebA/b.png"), ("extra", "CelebA/b.png/x.png")]


def test_report_json_and_summary(tmp_path: Path) -> None:
    images = restored()
    del images["CelebA/b.png"]
    images["LFW-Test/c.png"] = png_bytes((8, 8))
    report = check(write_zip(tmp_path / "sub.zip", images))
    data = report.to_json()
    assert data == {
        "ok": False,
        "errors": [
            {"code": "missing", "path": "CelebA/b.png", "message": "CelebA/b.png is missing from the submission."},
            {
                "code": "wrong_size",
                "path": "LFW-Test/c.png",
                "message": "LFW-Test/c.png is 8x8; expected 16x16 like its input.",
            },
        ],
        "checked_files": 4,
    }
    json.dumps(data)
    text = report.summary()
    assert "missing=1, wrong_size=1" in text
    assert "[wrong_size] LFW-Test/c.png is 8x8" in text
    ok = CheckReport([], 5)
    assert ok.to_json() == {"ok": True, "errors": [], "checked_files": 5}
    assert "OK" in ok.summary()
    assert ArchiveProblem("x", "", "y") in CheckReport([ArchiveProblem("x", "", "y")], 0).problems


# --------------------------------------------------------------------------- the CLI entry point


def test_cli_json_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = make_inputs(tmp_path)
    rc = run_check_cli(inputs, write_zip(tmp_path / "sub.zip", restored()), as_json=True)
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out == {"ok": True, "errors": [], "checked_files": 5}


def test_cli_text_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = make_inputs(tmp_path)
    images = restored()
    del images["CelebA/b.png"]
    rc = run_check_cli(inputs, write_zip(tmp_path / "sub.zip", images), as_json=False)
    out = capsys.readouterr().out
    assert rc == 1
    assert "[missing] CelebA/b.png is missing" in out


def test_cli_missing_inputs_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_check_cli(tmp_path / "nope", write_zip(tmp_path / "sub.zip", restored()), as_json=True)
    captured = capsys.readouterr()
    assert rc == 1
    out = json.loads(captured.out)
    assert out["ok"] is False
    assert [e["code"] for e in out["errors"]] == ["bad_inputs"]
    assert "Traceback" not in captured.err


def test_cli_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_check_cli(make_inputs(tmp_path), tmp_path / "absent.zip", as_json=True)
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert [e["code"] for e in out["errors"]] == ["not_found"]
