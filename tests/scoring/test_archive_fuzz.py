"""Fuzz scoring.archive.check_and_extract with 10,000 hostile archives.

Run with ``pytest -m fuzz tests/scoring/test_archive_fuzz.py -s`` (excluded by default).

Policy: the check must return a CheckReport for any bytes, and the ``unreadable`` code
(which only the last-resort handler for unexpected exceptions emits) must never appear:
every failure mode of hostile input has to be classified by a specific code. Every code
must be one of PROBLEM_CODES, the list must respect its cap, and a rejected check must
leave the extraction folder empty.
"""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import shutil
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from scoring.archive import MAX_REPORTED_PROBLEMS, PROBLEM_CODES, CheckReport, check_and_extract
from tests.scoring.test_archive import (
    PNG_SIGNATURE,
    RawEntry,
    build_zip,
    expected_for,
    png_bytes,
    png_chunk,
    relpaths,
    zip_bytes,
)

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("ARCHIVE_FUZZ_EXAMPLES", "10000"))  # lower it for a quick local run
SIZE = (8, 8)
DATASETS = {"A": ["x", "y"], "B": ["z"]}
EXPECTED = expected_for(DATASETS, SIZE)
PATHS = relpaths(DATASETS)
IMAGES = {path: png_bytes(SIZE, seed=i) for i, path in enumerate(PATHS)}

_jpeg = io.BytesIO()
Image.new("RGB", SIZE).save(_jpeg, format="JPEG")
CONTENTS = [
    *IMAGES.values(),
    png_bytes(SIZE, mode="RGBA"),
    png_bytes(SIZE, mode="P"),
    png_bytes((4, 4)),
    _jpeg.getvalue(),
    zip_bytes(IMAGES),
    b"",
    PNG_SIGNATURE,
]

BASES = [
    zip_bytes(IMAGES),
    zip_bytes(IMAGES, zipfile.ZIP_STORED),
    zip_bytes([("w/", b""), *((f"w/{p}", d) for p, d in IMAGES.items()), ("__MACOSX/w/._x", b"j")]),
    build_zip([RawEntry(p.encode(), d) for p, d in IMAGES.items()], zip64=True, comment=b"c"),
    build_zip([RawEntry(p.encode(), d, method=0) for p, d in IMAGES.items()]),
]

NAMES = [p.encode() for p in PATHS] + [
    b"../evil.png", b"/abs.png", b"C:\\x.png", b"A\\x.png", b"A/", b"B/", b"w/", b"__MACOSX/._x", b".DS_Store",
    b"A/X.PNG", b"a/x.png", b"A//x.png", b"A/./x.png", b"w/A/x.png", b"A/x.png/", b"A", b"x.zip",
    b"\xff\xfe.png", b"A/x\x00.png", b"A/\xe9.png", "A/\u00e9.png".encode(), b"A/x.png\\", b"",
]  # fmt: skip
EXTERNALS = [
    0,
    (stat.S_IFREG | 0o644) << 16,
    (stat.S_IFDIR | 0o755) << 16 | 0x10,
    (stat.S_IFLNK | 0o777) << 16,
    (stat.S_IFIFO | 0o644) << 16,
    (stat.S_IFCHR | 0o644) << 16,
    0x10,
]

# Field positions for header patches: (offset in record, struct format).
CENTRAL_FIELDS = [(4, "<H"), (8, "<H"), (10, "<H"), (16, "<L"), (20, "<L"), (24, "<L"), (28, "<H"),
                  (30, "<H"), (32, "<H"), (34, "<H"), (38, "<L"), (42, "<L")]  # fmt: skip
EOCD_FIELDS = [(4, "<H"), (6, "<H"), (8, "<H"), (10, "<H"), (12, "<L"), (16, "<L"), (20, "<H")]
INTERESTING = [0, 1, 0x7F, 0x800, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]

STATS: dict = {"count": 0, "slowest": 0.0, "slowest_kind": "", "slowest_bytes": 0, "total": 0.0, "check_rss_growth": 0}
CODES: Counter[str] = Counter()
KINDS: Counter[str] = Counter()
WORKDIR = Path(tempfile.mkdtemp(prefix="archive-fuzz-"))


class _LastError(logging.Handler):
    """Keeps the traceback of the last internal error, for a useful failure message."""

    text = ""

    def emit(self, record: logging.LogRecord) -> None:
        _LastError.text = self.format(record)


logging.getLogger("scoring.archive").addHandler(_LastError())


# --------------------------------------------------------------------------- strategies

values = st.one_of(st.sampled_from(INTERESTING), st.integers(0, 0xFFFFFFFF))


def _fix_crcs(data: bytearray) -> bytearray:
    """Recompute every chunk CRC that can be found, so damage reaches the decoder, not the CRC check."""
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = struct.unpack_from(">I", data, pos)[0]
        end = pos + 8 + length
        if end + 4 > len(data):
            break
        struct.pack_into(">I", data, end, zlib.crc32(bytes(data[pos + 4 : end])))
        pos = end + 4
    return data


@st.composite
def random_png(draw: st.DrawFn) -> bytes:
    """A PNG whose IHDR fields, CRCs, pixel data and chunk list are random.

    Half the IHDRs are plausible (8x8, 8-bit RGB, or a near miss) so that many cases get
    past the header checks into Pillow's decoder.
    """
    if draw(st.booleans()):
        width, height = SIZE
        depth, colour = draw(st.sampled_from([(8, 2), (8, 2), (8, 2), (16, 2), (8, 6), (8, 3), (8, 0)]))
        tail = [0, 0, draw(st.sampled_from([0, 1]))]
    else:
        width = draw(st.one_of(st.just(SIZE[0]), st.integers(0, 2**32 - 1)))
        height = draw(st.one_of(st.just(SIZE[1]), st.integers(0, 2**32 - 1)))
        depth = draw(st.sampled_from([1, 2, 4, 8, 8, 8, 16, 0, 3, 255]))
        colour = draw(st.sampled_from([0, 2, 2, 2, 3, 4, 6, 1, 7]))
        tail = draw(st.lists(st.integers(0, 2), min_size=3, max_size=3))
    ihdr = struct.pack(">2I5B", width, height, depth, colour, *tail)
    raw_rows = (b"\x00" + bytes(3 * SIZE[0])) * SIZE[1]
    idat = draw(
        st.one_of(
            st.just(zlib.compress(raw_rows)),
            st.binary(max_size=400).map(zlib.compress),  # valid zlib, random filters and lengths
            st.binary(max_size=120),  # not even zlib
        )
    )
    chunks = [png_chunk(b"IHDR", ihdr)]
    if draw(st.booleans()):
        chunks.append(png_chunk(b"PLTE", draw(st.binary(max_size=30))))
    split = draw(st.integers(0, len(idat)))
    chunks += [png_chunk(b"IDAT", idat[:split]), png_chunk(b"IDAT", idat[split:])]
    for _ in range(draw(st.integers(0, 2))):
        tag = draw(st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"tRNS", b"acTL", b"fcTL", b"IDAT", b"eXIf"]))
        chunks.insert(draw(st.integers(1, len(chunks))), png_chunk(tag, draw(st.binary(max_size=40))))
    chunks.append(png_chunk(b"IEND", b""))
    data = bytearray(PNG_SIGNATURE + b"".join(chunks))
    for _ in range(draw(st.integers(0, 2))):  # damage any byte (a CRC, a length, pixel data)
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        _fix_crcs(data)
    if draw(st.integers(0, 3)) == 0:
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


@st.composite
def mutated_bytes(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid archive with random byte flips, insertions, deletions, overwrites and cuts."""
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "overwrite", "truncate"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(pos, len(data) - 1)] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos : pos + len(chunk)] = chunk
        elif op == "truncate" and draw(st.integers(0, 3)) == 0:
            del data[pos:]
    return "bytes", bytes(data)


@st.composite
def patched_headers(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid archive with central directory / end record fields set to random values."""
    data = bytearray(draw(st.sampled_from(BASES[:3] + BASES[4:])))
    cd_offset = struct.unpack_from("<L", data, len(data) - 6)[0]
    records, pos = [], cd_offset
    while data[pos : pos + 4] == b"PK\x01\x02":
        records.append(pos)
        pos += 46 + sum(struct.unpack_from("<3H", data, pos + 28))
    eocd = len(data) - 22
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            base = draw(st.sampled_from(records))
            offset, fmt = draw(st.sampled_from(CENTRAL_FIELDS))
        else:
            base = eocd
            offset, fmt = draw(st.sampled_from(EOCD_FIELDS))
        value = draw(values) & (0xFFFF if fmt == "<H" else 0xFFFFFFFF)
        struct.pack_into(fmt, data, base + offset, value)
    return "headers", bytes(data)


entries = st.builds(
    RawEntry,
    name=st.one_of(st.sampled_from(NAMES), st.binary(max_size=24), st.text(max_size=20).map(str.encode)),
    data=st.one_of(st.sampled_from(CONTENTS), random_png(), st.binary(max_size=64)),
    method=st.sampled_from([8, 8, 8, 0, 0, 12, 14, 9, 99]),
    flags=st.one_of(st.sampled_from([0, 0, 0x800, 0x8, 0x1, 0x41]), st.integers(0, 0xFFFF)),
    external=st.one_of(st.sampled_from(EXTERNALS), st.integers(0, 0xFFFFFFFF)),
    system=st.sampled_from([3, 3, 0, 19, 255]),
    crc_xor=st.sampled_from([0, 0, 0, 1]),
    size_delta=st.sampled_from([0, 0, 0, 0, -1, 1, 5000, 2**31]),
    packed_delta=st.sampled_from([0, 0, 0, 0, -1, 1, 5000]),
    extra=st.one_of(
        st.just(b""),
        st.binary(max_size=24),
        st.builds(lambda n: struct.pack("<2H", 1, 8 * n) + bytes(8 * n), st.integers(0, 3)),
    ),
)


@st.composite
def random_members(draw: st.DrawFn) -> tuple[str, bytes]:
    """Hand-built archives: valid images mixed with members of random names and attributes."""
    chosen = [RawEntry(p.encode(), d) for p, d in IMAGES.items() if draw(st.booleans())]
    chosen += draw(st.lists(entries, max_size=5))
    order = draw(st.permutations(range(len(chosen))))
    return "members", build_zip([chosen[i] for i in order], zip64=draw(st.booleans()))


@st.composite
def random_pngs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A well-formed archive whose images have random PNG headers and chunks."""
    members = [(p, draw(random_png()) if draw(st.booleans()) else d) for p, d in IMAGES.items()]
    method = draw(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))
    return "png", zip_bytes(members, method)


archives = st.one_of(mutated_bytes(), patched_headers(), random_members(), random_pngs())


# --------------------------------------------------------------------------- the fuzz test


def _check_one(kind: str, data: bytes) -> CheckReport:
    source = WORKDIR / "submission.zip"
    source.write_bytes(data)
    dest = WORKDIR / "out"
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = check_and_extract(source, EXPECTED, dest)
    elapsed = time.perf_counter() - started
    # Growth of the process's peak RSS during one check (KiB): what the check itself costs.
    STATS["check_rss_growth"] = max(
        STATS["check_rss_growth"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    )
    STATS["count"] += 1
    STATS["total"] += elapsed
    KINDS[kind] += 1
    if elapsed > STATS["slowest"]:
        STATS.update(slowest=elapsed, slowest_kind=kind, slowest_bytes=len(data), slowest_data=data)
    try:
        assert isinstance(report, CheckReport)
        assert "unreadable" not in {p.code for p in report.problems}, (report.summary(), _LastError.text)
        assert {p.code for p in report.problems} <= PROBLEM_CODES, report.summary()
        assert len(report.problems) <= MAX_REPORTED_PROBLEMS
        json.dumps(report.to_json())
        if report.ok:
            written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
            assert written == sorted(PATHS)
        else:
            assert not dest.exists() or not any(dest.iterdir())
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    CODES.update(p.code for p in report.problems)
    CODES["(ok)"] += report.ok
    return report


def test_valid_bases_pass() -> None:
    for base in BASES:
        assert _check_one("base", base).ok


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(archives)
@pytest.mark.filterwarnings("ignore:Invalid APNG:UserWarning")  # Pillow's own note on broken APNGs
def test_hostile_archives_never_crash(case: tuple[str, bytes]) -> None:
    kind, data = case
    _check_one(kind, data)


def test_zz_fuzz_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last (file order): print what the fuzz run covered and cost."""
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    # One slow run can be a GC pause or the scheduler; replaying tells the case's own cost.
    replay = WORKDIR / "slowest.zip"
    replay.write_bytes(STATS.get("slowest_data", b""))
    replayed = []
    for _ in range(3):
        started = time.perf_counter()
        check_and_extract(replay, EXPECTED)
        replayed.append(time.perf_counter() - started)
    with capsys.disabled():
        print(
            f"\narchive fuzz: {STATS['count']} archives checked in {STATS['total']:.1f} s "
            f"(mean {1000 * STATS['total'] / max(STATS['count'], 1):.2f} ms); slowest "
            f"{1000 * STATS['slowest']:.1f} ms ({STATS['slowest_kind']}, {STATS['slowest_bytes']} bytes; "
            f"{1000 * min(replayed):.1f} ms when replayed); "
            f"peak RSS {peak_mib:.0f} MiB (largest rise during one check: "
            f"{STATS['check_rss_growth'] / 1024:.1f} MiB)"
        )
        print("  strategies: " + ", ".join(f"{k}={n}" for k, n in sorted(KINDS.items())))
        print("  codes seen: " + ", ".join(f"{k}={n}" for k, n in CODES.most_common()))
    if os.environ.get("ARCHIVE_FUZZ_KEEP_SLOWEST"):  # to replay it: check_and_extract(that file, ...)
        Path(os.environ["ARCHIVE_FUZZ_KEEP_SLOWEST"]).write_bytes(STATS["slowest_data"])
    shutil.rmtree(WORKDIR, ignore_errors=True)
    assert STATS["count"] >= EXAMPLES
