"""Check a participant's submission archive and extract it safely.

A submission is a zip file (or, for the CLI, a folder) of restored images laid out
``<Dataset>/<stem>.png``, exactly one per low-quality input of the phase. The check
reports *every* problem it finds, each with a stable machine ``code``, the member
path and a human sentence, and never raises for any input bytes.

Design choices worth knowing:

* The zip is parsed here from its central directory (not with ``zipfile``), so that
  every size, count, name and attribute is checked from the headers before any
  member body is read, and so that hostile headers can only lead to a reported
  problem. Store, Deflate, BZip2 and LZMA are read (what the standard library reads),
  each decompressed in bounded steps; Deflate64 is refused with the commands that
  re-zip a folder on Windows, macOS and Linux.
* Nothing is ever written under a name taken from the archive: extracted files are
  written to ``dest/<Dataset>/<stem>.png`` using the organisers' expected names.
* Archive-level limits (total size, overall ratio) stop the check before member
  bodies are read, so hostile archives cost time proportional to their headers.

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

import bz2
import io
import json
import logging
import lzma
import os
import re
import stat
import struct
import unicodedata
import zlib
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from scoring.inputs import InputImage, InputSetError, scan_inputs

logger = logging.getLogger(__name__)
# A library must not print tracebacks through logging's last-resort handler (the CLI
# promises none); applications that configure logging still receive the records.
logger.addHandler(logging.NullHandler())

MAX_REPORTED_PROBLEMS = 200  # the report's problem list never grows past this

# Every code a report can contain (see the module docstring).
PROBLEM_CODES = frozenset(
    {
        "missing", "extra", "not_png", "wrong_size", "wrong_mode", "bit_depth", "corrupt_png",
        "path_escape", "bad_name", "bad_name_encoding", "symlink", "special_member", "duplicate",
        "case_duplicate", "directory_expected", "nested_archive", "encrypted", "unsupported_compression",
        "too_many_members", "too_large", "zip_bomb", "not_zip", "truncated", "corrupt_zip", "empty",
        "not_found", "read_error", "bad_inputs", "more_problems", "unreadable",
    }
)  # fmt: skip

# Ratio checks only apply above this size: tiny members (a folder of text, an empty
# file) compress "well" without being dangerous.
RATIO_CHECK_FLOOR = 1024**2

_CHUNK = 64 * 1024
_MAX_NAME_BYTES = 1024
_MAX_COMPONENT_BYTES = 255
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_HEAD = 33  # signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC)

_JUNK_DIRS = frozenset({"__MACOSX"})
_JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_ARCHIVE_SUFFIXES = (".zip", ".7z", ".rar", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".lz4")
_DRIVE = re.compile(r"^[A-Za-z]:")

# Zip structures (APPNOTE.TXT), all little-endian.
_LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_EOCD_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_SPAN_SIG = b"PK\x07\x08"
_EOCD = struct.Struct("<4s4H2LH")  # sig, disk, cd disk, entries here, entries, cd size, cd offset, comment
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # sig, disk of zip64 EOCD, its offset, number of disks
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # sig, size, versions, disks, entries here, entries, cd size, offset
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # see _ZipSource._read_central
_LOCAL = struct.Struct("<4s5H3L2H")
_FLAG_ENCRYPTED = 0x0001
_FLAG_STRONG_ENCRYPTION = 0x0040
_METHOD_STORED = 0
_METHOD_DEFLATED = 8
_METHOD_DEFLATE64 = 9
_METHOD_BZIP2 = 12
_METHOD_LZMA = 14
_METHOD_AES = 99
_READABLE_METHODS = frozenset({_METHOD_STORED, _METHOD_DEFLATED, _METHOD_BZIP2, _METHOD_LZMA})
_FLAG_LZMA_EOS = 0x0002  # general purpose bit 1 with LZMA: the stream ends with an end marker
# How to make a zip every checker reads (Deflate), for a participant whose tool wrote another method.
REZIP_HELP = (
    "re-zip the results folder with Deflate, from inside it: on Windows (PowerShell) "
    "`Compress-Archive -Path * -DestinationPath ..\\results.zip`, or `tar -a -c -f ..\\results.zip *`; "
    "on macOS `zip -r ../results.zip .`; on Linux `zip -r ../results.zip .` "
    "(or `7z a -tzip -mm=Deflate ../results.zip .`)"
)
_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFFFFFF

_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette (indexed colour)", 4: "grayscale with alpha", 6: "RGBA"}
_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class ArchiveLimits:
    max_archive_bytes: int = 2 * 1024**3  # size of the zip file itself
    max_members: int = 5000  # entries in the central directory
    max_total_uncompressed: int = 3 * 1024**3  # sum of declared uncompressed sizes
    max_member_bytes: int = 64 * 1024**2  # one member, declared AND actually read
    max_compression_ratio: float = 100.0  # per member and overall
    max_image_pixels: int = 4096 * 4096  # PNG declared width*height (decompression bomb guard)


@dataclass(frozen=True)
class ExpectedImage:
    relpath: str  # "<Dataset>/<stem>.png"
    width: int
    height: int


@dataclass(frozen=True)
class ArchiveProblem:
    code: str  # stable machine code (see the module docstring)
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


def expected_from_inputs(inputs: Sequence[InputImage]) -> list[ExpectedImage]:
    """One expected restored image per input, with the input's size."""
    return [ExpectedImage(image.relpath, image.width, image.height) for image in inputs]


def check_and_extract(
    source: Path,
    expected: Sequence[ExpectedImage],
    dest: Path | None = None,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008 - frozen dataclass, safe as a default
) -> CheckReport:
    """Check ``source`` (a zip file or a folder) against ``expected``.

    With ``dest`` and a passing check, the images are written to
    ``dest/<Dataset>/<stem>.png``; on failure nothing is left there. ``dest`` must be
    empty or absent (a ValueError otherwise: that is a caller bug, not bad input).
    Never raises for anything in ``source``; an OSError writing to ``dest`` (disk full)
    is the host's problem and is raised, after cleaning up.
    """
    expected_list = list(expected)
    _validate_expected(expected_list)
    if dest is not None:
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise ValueError(f"extraction folder must be empty or absent: {dest}")
    run = _Run(expected_list, limits, dest)
    try:
        run.execute(Path(source))
    except _Stop as stop:
        run.add(stop.code, stop.path, stop.message)
    except _DestError as exc:
        run.remove_written()
        raise exc.original from None
    except Exception as exc:  # the promise is "never raises"; this is a bug, so log it loudly
        logger.error("internal error while checking %s", source, exc_info=True)
        run.add(
            "unreadable",
            "",
            f"The submission could not be checked because of an internal error ({type(exc).__name__}); "
            "please report this to the organisers.",
        )
    finally:
        if run.problems:
            run.remove_written()
    return run.report()


def check_submission(
    inputs_dir: Path,
    source: Path,
    limits: ArchiveLimits = ArchiveLimits(),  # noqa: B008 - frozen dataclass, safe as a default
) -> CheckReport:
    """Check ``source`` against the input set in ``inputs_dir`` without extracting it.

    An unusable input folder is reported as a ``bad_inputs`` problem.
    """
    try:
        inputs = scan_inputs(Path(inputs_dir))
    except InputSetError as exc:
        return CheckReport([ArchiveProblem("bad_inputs", "", str(exc))], 0)
    except OSError as exc:  # Pillow could not open one of the organisers' images
        return CheckReport([ArchiveProblem("bad_inputs", "", f"cannot read the input images: {exc}")], 0)
    return check_and_extract(source, expected_from_inputs(inputs), None, limits)


def run_check_cli(inputs_dir: Path, source: Path, as_json: bool) -> int:
    """``python -m scoring check``: print the report; 0 when valid, 1 when rejected."""
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


# --------------------------------------------------------------------------- internals


class _Stop(Exception):
    """The check cannot go on (unreadable archive, limit exceeded)."""

    def __init__(self, code: str, message: str, path: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.path = code, message, path


class _MemberError(Exception):
    """One member cannot be read; the others can still be checked."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _DestError(Exception):
    """Writing to the extraction folder failed: not the submission's fault."""

    def __init__(self, original: OSError) -> None:
        super().__init__(str(original))
        self.original = original


@dataclass
class _Member:
    shown: str  # the name as shown to the user (undecodable bytes replaced)
    name: str | None  # the decoded name; None when it is not valid UTF-8 or too long
    kind: str  # "file", "dir", "symlink" or "special"
    size: int  # declared uncompressed size
    packed: int  # compressed size (== size outside zips)
    issue: tuple[str, str] | None = None  # a problem the reader found in the member's headers
    # Zip only:
    raw_name: bytes = b""
    method: int = 0
    flags: int = 0
    crc: int = 0
    offset: int = 0  # of the local header
    limit: int = 0  # where the member's data must end: the next local header or the central directory
    # Folder only:
    fs_path: str = ""


def _validate_expected(expected: list[ExpectedImage]) -> None:
    seen: set[str] = set()
    for image in expected:
        parts = image.relpath.split("/")
        if (
            len(parts) != 2
            or not parts[1].endswith(".png")
            or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts)
            or parts[1] == ".png"
        ):
            raise ValueError(f"expected image path must be <Dataset>/<stem>.png: {image.relpath!r}")
        if image.width <= 0 or image.height <= 0:
            raise ValueError(f"expected image size must be positive: {image}")
        key = _key(image.relpath)
        if key in seen:
            raise ValueError(f"expected image listed twice: {image.relpath}")
        seen.add(key)


def _key(name: str) -> str:
    # macOS stores names decomposed (NFD); compare names in one normal form.
    return unicodedata.normalize("NFC", name)


def _display(raw: bytes) -> str:
    """A member name safe to show: undecodable bytes become U+FFFD, and control or
    invisible formatting characters (NUL, bidi overrides) are escaped, so a name can
    neither hide nor reorder text in a log line or a web page."""
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in ("Cc", "Cf") else c
        for c in raw.decode("utf-8", "replace")
    )


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _sniff(head: bytes) -> str | None:
    """Name a well-known file type from its first bytes."""
    signatures: tuple[tuple[bytes, str], ...] = (
        (_PNG_SIGNATURE, "PNG image"),
        (b"\xff\xd8\xff", "JPEG image"),
        (b"GIF87a", "GIF image"),
        (b"GIF89a", "GIF image"),
        (b"II*\x00", "TIFF image"),
        (b"MM\x00*", "TIFF image"),
        (b"BM", "BMP image"),
        (b"\x00\x00\x00\x0cjP  ", "JPEG 2000 image"),
        (_LOCAL_SIG, "zip archive"),
        (_EOCD_SIG, "zip archive"),
        (_SPAN_SIG, "zip archive"),
        (b"Rar!\x1a\x07", "RAR archive"),
        (b"7z\xbc\xaf\x27\x1c", "7z archive"),
        (b"\x1f\x8b", "gzip file"),
        (b"BZh", "bzip2 file"),
        (b"\xfd7zXZ\x00", "xz file"),
        (b"\x28\xb5\x2f\xfd", "zstd file"),
        (b"%PDF", "PDF document"),
    )
    for magic, kind in signatures:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP image"
    if head[257:262] == b"ustar":
        return "tar archive"
    return None


_ARCHIVE_KINDS = frozenset(
    {"zip archive", "RAR archive", "7z archive", "gzip file", "bzip2 file", "xz file", "zstd file", "tar archive"}
)


def _name_problem(name: str, is_dir: bool) -> tuple[str, str] | None:
    """Why a member name is unacceptable, as (code, reason), or None."""
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        # Control and invisible formatting characters (NUL, bidi overrides) disguise names.
        return "bad_name", "contains control or invisible formatting characters"
    if name.startswith(("/", "\\")):
        return "path_escape", "is an absolute path"
    if _DRIVE.match(name):
        return "path_escape", "starts with a drive letter"
    body = name[:-1] if is_dir and name.endswith("/") else name
    if ".." in re.split(r"[/\\]", body):
        return "path_escape", "contains '..', which would point outside the submission folder"
    if "\\" in name:
        return "bad_name", "contains a backslash; zip paths must use forward slashes"
    parts = body.split("/")
    if not body or any(p in ("", ".") for p in parts):
        return "bad_name", "has an empty or '.' path component"
    if len(name.encode()) > _MAX_NAME_BYTES or any(len(p.encode()) > _MAX_COMPONENT_BYTES for p in parts):
        return "bad_name", "is too long"
    return None


def _is_junk(parts: list[str], kind: str) -> bool:
    """Operating-system clutter that is silently ignored (never read or extracted)."""
    if any(part in _JUNK_DIRS for part in parts):
        return True
    return kind == "file" and (parts[-1] in _JUNK_FILES or parts[-1].startswith("._"))


# --------------------------------------------------------------------------- zip reader


class _ZipSource:
    """Reads a zip from its central directory, checking every header field it uses."""

    def __init__(self, fh: BinaryIO, size: int, limits: ArchiveLimits) -> None:
        self.fh, self.size, self.limits = fh, size, limits

    def _read_at(self, offset: int, length: int) -> bytes:
        self.fh.seek(offset)
        return self.fh.read(length)

    def members(self) -> list[_Member]:
        head = self._read_at(0, 512)
        if not head.startswith((_LOCAL_SIG, _EOCD_SIG, _SPAN_SIG)):
            kind = _sniff(head)
            what = f"a {kind}" if kind else "not a zip archive"
            raise _Stop("not_zip", f"The uploaded file is {what}; upload a .zip of <Dataset>/<stem>.png images.")
        cd_offset, cd_size, declared = self._find_central_directory()
        return self._read_central(cd_offset, cd_size, declared)

    def _find_central_directory(self) -> tuple[int, int, int]:
        tail_start = max(0, self.size - (_EOCD.size + _U16_MAX))
        tail = self._read_at(tail_start, self.size - tail_start)
        found: tuple[int, tuple] | None = None
        pos = tail.rfind(_EOCD_SIG)
        while pos >= 0:
            if pos + _EOCD.size <= len(tail):
                fields = _EOCD.unpack_from(tail, pos)
                end = pos + _EOCD.size + fields[7]
                if end == len(tail):  # its comment reaches the end of the file: the real one
                    found = (pos, fields)
                    break
                if end < len(tail) and found is None:  # tolerate trailing bytes after the record
                    found = (pos, fields)
            pos = tail.rfind(_EOCD_SIG, 0, pos)
        if found is None:
            raise _Stop(
                "truncated",
                "The zip ends before its table of contents (central directory): the file is cut off or "
                "damaged. Upload it again.",
            )
        pos, (_, disk, cd_disk, entries_here, entries, cd_size, cd_offset, _) = found
        eocd_offset = tail_start + pos
        cd_end_limit = eocd_offset
        locator_offset = eocd_offset - _ZIP64_LOCATOR.size
        if locator_offset >= 0:
            locator = self._read_at(locator_offset, _ZIP64_LOCATOR.size)
            if locator[:4] == _ZIP64_LOCATOR_SIG:
                _, z_disk, z_offset, z_disks = _ZIP64_LOCATOR.unpack(locator)
                if z_disk != 0 or z_disks > 1 or z_offset + _ZIP64_EOCD.size > locator_offset:
                    raise _Stop("corrupt_zip", "The zip's ZIP64 end record is damaged or points elsewhere.")
                record = self._read_at(z_offset, _ZIP64_EOCD.size)
                if len(record) != _ZIP64_EOCD.size or record[:4] != _ZIP64_EOCD_SIG:
                    raise _Stop("corrupt_zip", "The zip's ZIP64 end record is missing or damaged.")
                _, _, _, _, disk, cd_disk, entries_here, entries, cd_size, cd_offset = _ZIP64_EOCD.unpack(record)
                cd_end_limit = z_offset
        if disk != 0 or cd_disk != 0 or entries_here != entries:
            raise _Stop("corrupt_zip", "The zip is split into several parts; upload a single .zip file.")
        if entries > self.limits.max_members:
            raise _Stop(
                "too_many_members",
                f"The zip has {entries} entries; at most {self.limits.max_members} are allowed.",
            )
        if cd_offset + cd_size > cd_end_limit:
            raise _Stop(
                "truncated",
                "The zip's table of contents points past the end of the file: it is cut off or damaged.",
            )
        return cd_offset, cd_size, entries

    def _read_central(self, cd_offset: int, cd_size: int, declared: int) -> list[_Member]:
        members: list[_Member] = []
        self.fh.seek(cd_offset)
        pos, end = cd_offset, cd_offset + cd_size
        while pos < end:
            if len(members) >= self.limits.max_members:
                raise _Stop(
                    "too_many_members",
                    f"The zip has more than {self.limits.max_members} entries, the most allowed.",
                )
            header = self.fh.read(_CENTRAL.size)
            if pos + _CENTRAL.size > end or len(header) != _CENTRAL.size or header[:4] != _CENTRAL_SIG:
                raise _Stop("corrupt_zip", "The zip's table of contents (central directory) is damaged.")
            (
                _, _, _, flags, method, _, _, crc, packed, size,
                name_len, extra_len, comment_len, disk, _, external, offset,
            ) = _CENTRAL.unpack(header)  # fmt: skip
            pos += _CENTRAL.size + name_len + extra_len + comment_len
            if pos > end:
                raise _Stop("corrupt_zip", "The zip's table of contents (central directory) is damaged.")
            raw_name = self.fh.read(name_len)
            extra = self.fh.read(extra_len)
            self.fh.seek(comment_len, os.SEEK_CUR)
            if len(raw_name) != name_len or len(extra) != extra_len:
                raise _Stop("corrupt_zip", "The zip's table of contents (central directory) is damaged.")
            member = self._member(raw_name, flags, method, crc, packed, size, disk, external, offset, extra)
            members.append(member)
        if len(members) != declared:
            raise _Stop(
                "corrupt_zip",
                f"The zip's end record announces {declared} entries but its table of contents "
                f"lists {len(members)}: the file is damaged.",
            )
        self._check_layout(members, cd_offset)
        return members

    @staticmethod
    def _member(
        raw_name: bytes,
        flags: int,
        method: int,
        crc: int,
        packed: int,
        size: int,
        disk: int,
        external: int,
        offset: int,
        extra: bytes,
    ) -> _Member:
        shown = _display(raw_name[:_MAX_NAME_BYTES])
        name: str | None = None
        if len(raw_name) <= _MAX_NAME_BYTES:
            # The UTF-8 flag (bit 11) is often missing on UTF-8 names (macOS, Linux zip); names
            # are accepted only when they are valid UTF-8 either way: no guessing at code pages.
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                name = None
        issue: tuple[str, str] | None = None
        # ZIP64 extra field: 64-bit values replace the fields saturated at their maximum.
        need_size, need_packed, need_offset = size == _U32_MAX, packed == _U32_MAX, offset == _U32_MAX
        need_disk = disk == _U16_MAX
        i = 0
        while i + 4 <= len(extra):
            tag, length = struct.unpack_from("<2H", extra, i)
            body = extra[i + 4 : i + 4 + length]
            i += 4 + length
            if tag != 1:
                continue
            values = [struct.unpack_from("<Q", body, j)[0] for j in range(0, len(body) - 7, 8)]
            wanted = [need_size, need_packed, need_offset]
            if len(values) < sum(wanted):
                issue = ("corrupt_zip", "has a damaged ZIP64 size field")
                break
            if need_size:
                size = values.pop(0)
            if need_packed:
                packed = values.pop(0)
            if need_offset:
                offset = values.pop(0)
            need_size = need_packed = need_offset = False
            if need_disk and values:
                disk = values[0] & _U32_MAX
                need_disk = False
        if issue is None and (need_size or need_packed or need_offset):
            issue = ("corrupt_zip", "lacks the ZIP64 size field its header announces")
        if issue is None and disk not in (0, _U16_MAX):
            issue = ("corrupt_zip", "lives in another part of a split zip")
        file_type = stat.S_IFMT(external >> 16)
        if file_type == stat.S_IFLNK:
            kind = "symlink"
        elif file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = "special"
        elif raw_name.endswith(b"/") or file_type == stat.S_IFDIR:
            kind = "dir"
        else:
            kind = "file"
        if issue is None:
            if flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION) or method == _METHOD_AES:
                issue = ("encrypted", "is encrypted; upload an archive without a password")
            elif kind == "dir" and size:
                issue = ("special_member", "is a folder entry that carries data")
            elif kind == "file" and method == _METHOD_DEFLATE64:
                issue = ("unsupported_compression", f"uses Deflate64 (7-Zip's option), which is not accepted; "
                         f"{REZIP_HELP}")
            elif kind == "file" and method not in _READABLE_METHODS:
                issue = (
                    "unsupported_compression",
                    f"uses compression method {method}; only Store, Deflate, BZip2 and LZMA are accepted: "
                    f"{REZIP_HELP}",
                )
            elif method == _METHOD_STORED and packed != size:
                issue = ("corrupt_zip", "is stored uncompressed but its two sizes differ")
        return _Member(
            shown=shown, name=name, kind=kind, size=size, packed=packed, issue=issue,
            raw_name=raw_name, method=method, flags=flags, crc=crc, offset=offset,
        )  # fmt: skip

    @staticmethod
    def _check_layout(members: list[_Member], cd_offset: int) -> None:
        """Each member's bytes must lie before the central directory and not overlap others."""
        ordered = sorted(members, key=lambda m: m.offset)
        for index, member in enumerate(ordered):
            following = ordered[index + 1].offset if index + 1 < len(ordered) else cd_offset
            member.limit = following
            if member.offset + _LOCAL.size + member.packed > cd_offset:
                if member.issue is None:
                    member.issue = ("truncated", "points past the end of the zip's data: the file is cut off")
            elif member.offset + _LOCAL.size + member.packed > following:
                # Overlapping entries let a small zip unpack to the same bytes many times.
                for overlapping in (member, ordered[index + 1]):
                    if overlapping.issue is None:
                        overlapping.issue = ("zip_bomb", "overlaps another entry's data, a zip-bomb technique")

    def read(self, member: _Member) -> Generator[bytes, None, None]:
        """The member's uncompressed bytes, never more than its declared size."""
        header = self._read_at(member.offset, _LOCAL.size)
        if len(header) != _LOCAL.size or header[:4] != _LOCAL_SIG:
            raise _MemberError("corrupt_zip", "cannot be read: its local header is missing (damaged zip)")
        _, _, flags, method, _, _, _, _, _, name_len, extra_len = _LOCAL.unpack(header)
        if flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
            raise _MemberError("encrypted", "is encrypted; upload an archive without a password")
        if method != member.method or self.fh.read(name_len) != member.raw_name:
            # Two headers that disagree can make different tools see different files.
            raise _MemberError("corrupt_zip", "has a local header that disagrees with the table of contents")
        start = member.offset + _LOCAL.size + name_len + extra_len
        if start + member.packed > member.limit:
            raise _MemberError("zip_bomb", "has data that runs into another entry, a zip-bomb technique")
        self.fh.seek(start)
        remaining, produced, crc = member.packed, 0, 0
        decoder = _Decoder(method, member.flags, member.size)
        while remaining:
            chunk = self.fh.read(min(_CHUNK, remaining))
            if not chunk:
                raise _MemberError("truncated", "is cut off: the zip ends inside its data")
            remaining -= len(chunk)
            for out in decoder.feed(chunk):
                produced += len(out)
                if produced > member.size:
                    raise _MemberError("corrupt_zip", f"unpacks to more than its declared {_human_bytes(member.size)}")
                crc = zlib.crc32(out, crc)
                yield out
            if decoder.eof and (remaining or decoder.unused_data):
                raise _MemberError("corrupt_zip", "has unexpected bytes after its compressed data")
        if not decoder.finished(produced):
            raise _MemberError("corrupt_zip", "has compressed data that ends early (damaged zip)")
        if produced != member.size:
            raise _MemberError("corrupt_zip", "unpacks to fewer bytes than declared (damaged zip)")
        if crc != member.crc:
            raise _MemberError("corrupt_zip", "fails its checksum (CRC): the zip is damaged")


class _Decoder:
    """One member's decompressor (Store, Deflate, BZip2, LZMA), fed chunk by chunk.

    Every call to a decompressor asks for at most ``_CHUNK`` bytes, so one small chunk of
    input cannot expand unchecked, whatever the method.
    """

    def __init__(self, method: int, flags: int, size: int) -> None:
        self.method, self.size = method, size
        self.eos_marker = bool(flags & _FLAG_LZMA_EOS)
        self.header = b""  # LZMA only: its 4-byte header and properties, gathered before decoding
        self.inner: Any = None  # zlib's, bz2's or lzma's decompressor
        if method == _METHOD_DEFLATED:
            self.inner = zlib.decompressobj(-15)
        elif method == _METHOD_BZIP2:
            self.inner = bz2.BZ2Decompressor()

    @property
    def eof(self) -> bool:
        return self.inner is not None and self.inner.eof

    @property
    def unused_data(self) -> bytes:
        return self.inner.unused_data if self.inner is not None else b""

    def finished(self, produced: int) -> bool:
        """Whether the compressed stream is complete after all its bytes were fed."""
        if self.method == _METHOD_STORED:
            return True
        if self.method == _METHOD_LZMA and not self.eos_marker:
            # Without an end marker the stream ends where its declared size says.
            return self.inner is not None and produced == self.size
        return self.eof

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.method == _METHOD_STORED:
            yield data
            return
        try:
            if self.method == _METHOD_LZMA and self.inner is None:
                data = self._start_lzma(data)
                if self.inner is None:
                    return  # the header is not complete yet
            yield from self._bounded(data)
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
            raise _MemberError("corrupt_zip", f"has damaged compressed data ({exc})") from None

    def _bounded(self, data: bytes) -> Iterator[bytes]:
        inner = self.inner
        if self.method == _METHOD_DEFLATED:
            while not inner.eof:
                out = inner.decompress(data, _CHUNK)
                data = inner.unconsumed_tail
                if out:
                    yield out
                if len(out) < _CHUNK and not data:
                    return  # input used up and no output pending
            return
        while not inner.eof:
            out = inner.decompress(data, _CHUNK)
            data = b""
            if out:
                yield out
            if inner.needs_input or not out:
                return  # input used up (or, for LZMA without an end marker, nothing more to come)

    def _start_lzma(self, data: bytes) -> bytes:
        """Read the zip's LZMA header (version, properties size, properties) and open a raw decoder."""
        self.header += data
        if len(self.header) < 4:
            return b""
        props_size = struct.unpack_from("<H", self.header, 2)[0]
        if props_size != 5:
            raise _MemberError("corrupt_zip", "has a damaged LZMA header")
        if len(self.header) < 4 + props_size:
            return b""
        props, rest = self.header[4:9], self.header[9:]
        lclppb, dict_size = props[0], struct.unpack_from("<L", props, 1)[0]
        if lclppb >= 9 * 5 * 5:
            raise _MemberError("corrupt_zip", "has a damaged LZMA header")
        # A member of N bytes never refers further back than N: a larger declared dictionary would
        # only cost memory, so it is capped at the member's size.
        filters = [{
            "id": lzma.FILTER_LZMA1, "lc": lclppb % 9, "lp": lclppb // 9 % 5, "pb": lclppb // 45,
            "dict_size": max(4096, min(dict_size, self.size, 1 << 30)),
        }]
        self.inner = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=filters)
        self.header = b""
        return rest


# --------------------------------------------------------------------------- folder reader


class _DirSource:
    """A participant's folder, read without following links."""

    def __init__(self, root: Path, limits: ArchiveLimits) -> None:
        self.root, self.limits = root, limits

    def members(self) -> list[_Member]:
        members: list[_Member] = []
        stack: list[tuple[str, str]] = [("", os.fspath(self.root))]
        while stack:
            prefix, folder = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                raise _Stop("read_error", f"The folder {prefix or '.'} cannot be listed: {exc.strerror}") from None
            subfolders: list[tuple[str, str]] = []
            for entry in entries:
                if len(members) >= self.limits.max_members:
                    raise _Stop(
                        "too_many_members",
                        f"The folder has more than {self.limits.max_members} entries, the most allowed.",
                    )
                raw = os.fsencode(prefix + entry.name)
                shown = _display(raw)
                try:
                    name: str | None = raw.decode("utf-8")
                except UnicodeDecodeError:
                    name = None
                size = 0
                try:
                    if entry.is_symlink():
                        kind = "symlink"
                    elif entry.is_dir(follow_symlinks=False):
                        kind = "dir"
                        if entry.name not in _JUNK_DIRS:
                            subfolders.append((prefix + entry.name + "/", entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        kind = "file"
                        size = entry.stat(follow_symlinks=False).st_size
                    else:
                        kind = "special"
                except OSError as exc:
                    raise _Stop("read_error", f"{shown} cannot be inspected: {exc.strerror}", shown) from None
                if name is not None and kind == "dir":
                    name += "/"
                    shown += "/"
                members.append(_Member(shown=shown, name=name, kind=kind, size=size, packed=size,
                                       fs_path=entry.path))  # fmt: skip
            stack.extend(reversed(subfolders))
        return members

    def read(self, member: _Member) -> Generator[bytes, None, None]:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            # O_NOFOLLOW/O_NONBLOCK: a file swapped for a link or a FIFO since listing cannot hang or escape.
            fd = os.open(member.fs_path, flags | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _MemberError("read_error", f"cannot be opened: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _MemberError("special_member", "is not a regular file")
            produced = 0
            while True:
                try:
                    chunk = os.read(fd, _CHUNK)
                except OSError as exc:
                    raise _MemberError("read_error", f"cannot be read: {exc.strerror}") from None
                if not chunk:
                    return
                produced += len(chunk)
                if produced > self.limits.max_member_bytes:
                    raise _MemberError(
                        "too_large", f"is larger than the {_human_bytes(self.limits.max_member_bytes)} limit"
                    )
                yield chunk
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- the check


@dataclass
class _Run:
    expected: list[ExpectedImage]
    limits: ArchiveLimits
    dest: Path | None
    problems: list[ArchiveProblem] = field(default_factory=list)
    checked: int = 0
    written: list[Path] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)

    def add(self, code: str, path: str, message: str) -> None:
        self.problems.append(ArchiveProblem(code, path, message))

    def member_problem(self, code: str, member: _Member, reason: str) -> None:
        self.add(code, member.shown, f"{member.shown} {reason}.")

    def report(self) -> CheckReport:
        problems = self.problems
        if len(problems) > MAX_REPORTED_PROBLEMS:
            kept, rest = problems[: MAX_REPORTED_PROBLEMS - 1], problems[MAX_REPORTED_PROBLEMS - 1 :]
            counts = ", ".join(f"{code}: {n}" for code, n in sorted(Counter(p.code for p in rest).items()))
            more = ArchiveProblem("more_problems", "", f"... and {len(rest)} more problems ({counts}).")
            problems = [*kept, more]
        return CheckReport(list(problems), self.checked)

    # ---- driving

    def execute(self, source: Path) -> None:
        if source.is_dir():
            reader: _ZipSource | _DirSource = _DirSource(source, self.limits)
            self.check_members(reader, reader.members(), archive_bytes=None)
            return
        if not source.is_file():
            raise _Stop("not_found", f"The submission {source.name or source} does not exist.")
        try:
            size = source.stat().st_size
            if size == 0:
                raise _Stop("empty", "The uploaded file is empty (0 bytes).")
            if size > self.limits.max_archive_bytes:
                raise _Stop(
                    "too_large",
                    f"The uploaded file is {_human_bytes(size)}; the limit is "
                    f"{_human_bytes(self.limits.max_archive_bytes)}.",
                )
            with open(source, "rb") as fh:
                reader = _ZipSource(fh, size, self.limits)
                self.check_members(reader, reader.members(), archive_bytes=size)
        except OSError as exc:
            raise _Stop("read_error", f"The uploaded file cannot be read: {exc.strerror or exc}") from None

    def check_members(self, reader: _ZipSource | _DirSource, members: list[_Member], archive_bytes: int | None) -> None:
        if not members:
            raise _Stop("empty", "The submission contains no files.")
        blocked = self.check_totals(members, archive_bytes)
        images = self.classify(members)
        if blocked:
            return  # archive-level limits exceeded: do not decompress anything
        for member, image in images:
            self.check_image(reader, member, image)

    def check_totals(self, members: list[_Member], archive_bytes: int | None) -> bool:
        """Archive-wide limits from the headers; True when bodies must not be read."""
        total = sum(m.size for m in members)
        if total > self.limits.max_total_uncompressed:
            self.add(
                "too_large",
                "",
                f"The submission would unpack to {_human_bytes(total)}; the limit is "
                f"{_human_bytes(self.limits.max_total_uncompressed)}.",
            )
            return True
        member_bombs = any(self.ratio_exceeded(m) for m in members)
        if (
            archive_bytes
            and not member_bombs
            and total > RATIO_CHECK_FLOOR
            and total / archive_bytes > self.limits.max_compression_ratio
        ):
            self.add(
                "zip_bomb",
                "",
                f"The zip would unpack to {total / archive_bytes:.0f} times its size; at most "
                f"{self.limits.max_compression_ratio:g} times is allowed.",
            )
            return True
        return False

    def ratio_exceeded(self, member: _Member) -> bool:
        return member.size > RATIO_CHECK_FLOOR and member.size / max(member.packed, 1) > (
            self.limits.max_compression_ratio
        )

    def classify(self, members: list[_Member]) -> list[tuple[_Member, ExpectedImage]]:
        """Name, type, duplicate and matching rules; returns the images to read."""
        expected = {_key(image.relpath): image for image in self.expected}
        datasets = {key.split("/")[0] for key in expected}

        named: list[tuple[_Member, list[str]]] = []
        for member in members:
            if member.name is None:
                if len(member.raw_name) > _MAX_NAME_BYTES:
                    self.member_problem("bad_name", member, "has a name that is too long")
                else:
                    self.member_problem(
                        "bad_name_encoding",
                        member,
                        "has a name that is not valid UTF-8; re-create the zip with a tool that stores "
                        "UTF-8 names (7-Zip, macOS Finder, `zip` on Linux)",
                    )
                continue
            # bsdtar (Windows' `tar -a`, macOS) writes every name as "./<path>": harmless, so it is dropped.
            name = member.name
            while name.startswith("./"):
                name = name[2:]
            if not name and member.kind == "dir":
                continue  # the "./" entry itself
            problem = _name_problem(name, member.kind == "dir")
            if problem is not None:
                self.member_problem(problem[0], member, problem[1])
                continue
            parts = _key(name).rstrip("/").split("/")
            named.append((member, parts))

        # One optional wrapping folder ("results/CelebA/x.png") is stripped.
        relevant = [(m, p) for m, p in named if not _is_junk(p, m.kind)]
        tops = {p[0] for _, p in relevant}
        if len(tops) == 1:
            top = next(iter(tops))
            wraps = all(len(p) > 1 or m.kind == "dir" for m, p in relevant)
            if wraps and top not in datasets:
                named = [(m, p[1:] if p[0] == top and not _is_junk(p, m.kind) else p) for m, p in named]

        folded_expected = {key.casefold(): image for key, image in expected.items()}
        submitted = {"/".join(p) for m, p in named if m.kind == "file"}
        present: set[str] = set()  # expected paths that were submitted, even if faulty
        seen: dict[str, str] = {}
        seen_folded: dict[str, str] = {}
        folders: set[str] = set()
        files: list[tuple[_Member, str]] = []
        for member, parts in named:
            if not parts:
                continue  # the wrapping folder's own entry
            key = "/".join(parts)
            if member.kind in ("symlink", "special"):
                present.add(key)
                if member.kind == "symlink":
                    self.member_problem("symlink", member, "is a symbolic link; only regular files are allowed")
                else:
                    self.member_problem("special_member", member, "is not a regular file or folder")
                continue
            if member.issue is not None:
                present.add(key)
                self.member_problem(member.issue[0], member, member.issue[1])
                continue
            if _is_junk(parts, member.kind):
                continue
            if member.kind == "dir":
                folders.add(key)
                continue
            if key in seen:
                present.add(key)
                self.member_problem("duplicate", member, f"appears more than once (also as {seen[key]})")
                continue
            folded = key.casefold()
            twin = seen_folded.get(folded)
            if twin is None and key not in expected:
                # The exact expected name wins over a case variant, whichever comes first.
                image = folded_expected.get(folded)
                if image is not None and _key(image.relpath) in submitted:
                    twin = image.relpath
            if twin is not None:
                present.add(key)
                self.member_problem(
                    "case_duplicate",
                    member,
                    f"differs from {twin} only by upper/lower case, which clashes on Windows and macOS",
                )
                continue
            seen[key] = member.shown
            seen_folded[folded] = member.shown
            folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
            files.append((member, key))

        if not files and not self.problems:
            raise _Stop("empty", "The submission contains no files (only folders or system files).")

        by_stem = {key.rsplit("/", 1)[1][: -len(".png")]: image for key, image in expected.items()}
        images: list[tuple[_Member, ExpectedImage]] = []
        for member, key in files:
            image = expected.get(key)
            if key in folders:
                present.add(key)
                self.member_problem("directory_expected", member, "is a file, but other entries use it as a folder")
            elif member.size > self.limits.max_member_bytes:
                present.add(key)
                self.member_problem(
                    "too_large",
                    member,
                    f"is {_human_bytes(member.size)}; the limit per file is "
                    f"{_human_bytes(self.limits.max_member_bytes)}",
                )
            elif self.ratio_exceeded(member):
                present.add(key)
                self.member_problem(
                    "zip_bomb",
                    member,
                    f"would unpack to {member.size / max(member.packed, 1):.0f} times its compressed size; "
                    f"at most {self.limits.max_compression_ratio:g} times is allowed",
                )
            elif image is not None:
                present.add(key)
                images.append((member, image))
            elif key.lower().endswith(_ARCHIVE_SUFFIXES):
                self.member_problem(
                    "nested_archive", member, "is an archive inside the archive; put the PNG files in directly"
                )
            else:
                self.member_problem("extra", member, self.extra_reason(key, folded_expected, by_stem))

        for key, image in expected.items():
            if key not in present:
                self.add("missing", image.relpath, f"{image.relpath} is missing from the submission.")
        return images

    @staticmethod
    def extra_reason(key: str, folded: dict[str, ExpectedImage], by_stem: dict[str, ExpectedImage]) -> str:
        hint = folded.get(key.casefold())
        if hint is not None:
            return f"is not expected; names are case-sensitive: did you mean {hint.relpath}?"
        image = by_stem.get(key.rsplit("/", 1)[-1].rsplit(".", 1)[0])
        if image is None:
            return "is not one of the expected <Dataset>/<stem>.png images"
        if "/" not in key:
            return f"is not expected here: it belongs in its dataset folder, as {image.relpath}"
        if not key.endswith(".png"):
            return f"is not expected: only PNG files are accepted, as {image.relpath}"
        return f"is not expected: this image belongs at {image.relpath}"

    # ---- one image

    def check_image(self, reader: _ZipSource | _DirSource, member: _Member, image: ExpectedImage) -> None:
        self.checked += 1
        data = bytearray()
        header: list[tuple[str, str]] | None = None  # the header's problems, once read
        stream = reader.read(member)
        try:
            for chunk in stream:
                if header:
                    continue  # rejected already; read on (bounded) only so zip damage is named as such
                data += chunk
                if header is None and len(data) >= _PNG_HEAD:
                    header = self.png_header_problems(image, bytes(data[:_PNG_HEAD]))
            if header is None:
                header = self.png_header_problems(image, bytes(data))
        except _MemberError as exc:
            self.member_problem(exc.code, member, exc.message)
            return
        finally:
            stream.close()
        if header:
            for code, reason in header:
                self.member_problem(code, member, reason)
            return
        decoded = _decode_problem(bytes(data), image)
        if decoded is not None:
            self.member_problem(decoded[0], member, decoded[1])
            return
        if self.dest is not None and not self.problems:
            self.write(image, data)

    def png_header_problems(self, image: ExpectedImage, head: bytes) -> list[tuple[str, str]]:
        """Signature and IHDR checks before any pixel is decoded, as (code, reason) pairs."""
        if not head.startswith(_PNG_SIGNATURE):
            kind = _sniff(head)
            if kind in _ARCHIVE_KINDS:
                return [("nested_archive", f"is a {kind}, not a PNG; put the PNG files in directly")]
            if not head:
                return [("not_png", "is empty (0 bytes)")]
            if kind is not None:
                return [("not_png", f"is a {kind}, not a PNG (renaming does not convert it); save it as PNG")]
            return [("not_png", "is not a PNG file")]
        if len(head) < _PNG_HEAD or head[8:16] != b"\x00\x00\x00\x0dIHDR":
            return [("corrupt_png", "is a damaged PNG: its IHDR header is missing")]
        width, height, depth, colour, compression, filtering, interlace = struct.unpack(">2I5B", head[16:29])
        if (
            zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]
            or not 0 < width < 2**31
            or not 0 < height < 2**31
            or depth not in _BIT_DEPTHS.get(colour, ())
            or compression != 0
            or filtering != 0
            or interlace not in (0, 1)
        ):
            return [("corrupt_png", "is a damaged PNG: its IHDR header is invalid")]
        if width * height > self.limits.max_image_pixels:
            # A decompression bomb: never hand it to a decoder.
            return [
                (
                    "too_large",
                    f"declares {width}x{height} pixels, more than the limit of {self.limits.max_image_pixels}; "
                    f"expected {image.width}x{image.height}",
                )
            ]
        found = []
        if colour != 2:
            depth_note = f"{depth}-bit " if depth != 8 else ""
            found.append(("wrong_mode", f"is {depth_note}{_COLOUR_TYPES[colour]}; submit 8-bit RGB (no alpha)"))
        elif depth != 8:
            found.append(("bit_depth", f"is {depth}-bit RGB; submit 8-bit RGB"))
        if (width, height) != (image.width, image.height):
            found.append(("wrong_size", f"is {width}x{height}; expected {image.width}x{image.height} like its input"))
        return found

    # ---- extraction

    def write(self, image: ExpectedImage, data: bytearray) -> None:
        assert self.dest is not None
        dataset, filename = image.relpath.split("/")
        target = self.dest / dataset / filename
        try:
            for folder in (self.dest, self.dest / dataset):
                if not folder.exists():
                    folder.mkdir(parents=True)
                    self.created_dirs.append(folder)
            self.written.append(target)  # before writing, so a failed write is cleaned up too
            with open(target, "xb") as out:
                out.write(data)
        except OSError as exc:
            raise _DestError(exc) from exc

    def remove_written(self) -> None:
        for path in reversed(self.written):
            path.unlink(missing_ok=True)
        for folder in reversed(self.created_dirs):
            try:
                folder.rmdir()
            except OSError:
                logger.warning("could not remove %s after a failed check", folder)
        self.written.clear()
        self.created_dirs.clear()


def _decode_problem(data: bytes, image: ExpectedImage) -> tuple[str, str] | None:
    """Fully decode the PNG with Pillow; (code, reason) when it fails."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=("PNG",)) as im:
            im.verify()  # walks every chunk and checks its CRC, even with LOAD_TRUNCATED_IMAGES set
        with Image.open(io.BytesIO(data), formats=("PNG",)) as im:
            im.load()
            mode, size = im.mode, im.size
    except Image.DecompressionBombError:
        return "too_large", "has too many pixels to decode safely"
    except UnidentifiedImageError:  # Pillow's wording names a memory address: not for users
        return "corrupt_png", "is a damaged PNG that cannot be decoded; export it again"
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        # These are how Pillow reports damaged or truncated image data.
        return "corrupt_png", f"is a damaged or incomplete PNG ({exc}); export it again"
    except (IndexError, KeyError, TypeError, ArithmeticError, MemoryError) as exc:
        # Pillow's chunk parsers index into attacker-controlled bytes (e.g. a short iCCP chunk
        # after the image data raises IndexError): still a damaged file, not our bug.
        return "corrupt_png", f"is a damaged PNG ({type(exc).__name__} in a chunk); export it again"
    if mode != "RGB":
        return "wrong_mode", f"decodes as {mode}; submit 8-bit RGB (no alpha)"
    if size != (image.width, image.height):
        return "wrong_size", f"is {size[0]}x{size[1]}; expected {image.width}x{image.height} like its input"
    return None


# --------------------------------------------------------------------------- any named files (challenge bundles)


class SafeZip:
    """A zip of named files (a challenge bundle, say) read under the rules submissions are read under.

    Every member is judged from the central directory before any body is read: names must be valid UTF-8,
    relative, without ``..``, backslashes, control characters or case twins; links, special members,
    encryption and compressions other than Store/Deflate are refused; declared sizes, the member count and
    the compression ratio are bounded by ``limits``. ``problems`` lists every refusal (codes as above); the
    accepted files are read by name, never extracted under it, and each read stops at the member's declared
    size and checks its CRC. ``limits.max_archive_bytes`` bounds the zip file itself.
    """

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.problems: list[ArchiveProblem] = []
        self._members: dict[str, _Member] = {}
        self._fh: BinaryIO | None = None
        self._reader: _ZipSource | None = None
        run = _Run([], limits, None)  # its member rules (ratio) and messages, shared with submissions
        try:
            size = path.stat().st_size
            if size == 0:
                raise _Stop("empty", f"{path.name} is empty (0 bytes).")
            if size > limits.max_archive_bytes:
                raise _Stop("too_large", f"{path.name} is {_human_bytes(size)}; the limit is "
                                         f"{_human_bytes(limits.max_archive_bytes)}.")
            self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
            self._reader = _ZipSource(self._fh, size, limits)
            members = self._reader.members()
        except _Stop as stop:
            self.problems.append(ArchiveProblem(stop.code, stop.path, stop.message))
            return
        except OSError as exc:
            self.problems.append(ArchiveProblem("read_error", "", f"{path.name} cannot be read: {exc}"))
            return
        total = sum(m.size for m in members)
        if total > limits.max_total_uncompressed:
            run.add("too_large", "", f"The zip would unpack to {_human_bytes(total)}; the limit is "
                                     f"{_human_bytes(limits.max_total_uncompressed)}.")
        folded: dict[str, str] = {}
        for member in members:
            if member.name is None:
                run.member_problem("bad_name_encoding", member, "has a name that is too long or not valid UTF-8")
                continue
            problem = _name_problem(member.name, member.kind == "dir")
            if problem is not None:
                run.member_problem(problem[0], member, problem[1])
            elif member.kind == "symlink":
                run.member_problem("symlink", member, "is a symbolic link; only regular files are allowed")
            elif member.kind == "special":
                run.member_problem("special_member", member, "is not a regular file or folder")
            elif member.issue is not None:
                run.member_problem(member.issue[0], member, member.issue[1])
            elif member.kind == "dir" or _is_junk(member.name.split("/"), member.kind):
                continue
            elif _key(member.name).casefold() in folded:
                run.member_problem("case_duplicate" if _key(member.name) not in self._members else "duplicate",
                                   member, f"clashes with {folded[_key(member.name).casefold()]}")
            elif member.size > limits.max_member_bytes:
                run.member_problem("too_large", member, f"is {_human_bytes(member.size)}; the limit per file is "
                                                        f"{_human_bytes(limits.max_member_bytes)}")
            elif run.ratio_exceeded(member):
                run.member_problem("zip_bomb", member, f"would unpack to {member.size / max(member.packed, 1):.0f}"
                                                       " times its compressed size")
            else:
                folded[_key(member.name).casefold()] = member.shown
                self._members[_key(member.name)] = member
        self.problems.extend(run.problems)

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def names(self) -> list[str]:
        return sorted(self._members)

    def size(self, name: str) -> int:
        return self._members[name].size

    def stream(self, name: str) -> Iterator[bytes]:
        """The member's bytes in chunks; ArchiveMemberError when they are damaged (KeyError: not accepted)."""
        member = self._members[name]
        assert self._reader is not None
        try:
            yield from self._reader.read(member)
        except _MemberError as exc:
            raise ArchiveMemberError(ArchiveProblem(exc.code, member.shown, f"{member.shown} {exc.message}.")) from None

    def read(self, name: str) -> bytes:
        return b"".join(self.stream(name))


class ArchiveMemberError(Exception):
    """A member of a SafeZip could not be read as its headers promised."""

    def __init__(self, problem: ArchiveProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem
