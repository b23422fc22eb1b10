"""What the zip and folder readers list: one ``Member`` per entry, and the limits a submission is read under."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Ratio checks only apply above this size: tiny members (a folder of text, an empty
# file) compress "well" without being dangerous.
RATIO_CHECK_FLOOR = 1024**2


@dataclass(frozen=True)
class ArchiveLimits:
    max_archive_bytes: int = 2 * 1024**3  # size of the zip file itself
    max_members: int = 5000  # entries in the central directory
    max_total_uncompressed: int = 3 * 1024**3  # sum of declared uncompressed sizes
    max_member_bytes: int = 64 * 1024**2  # one member, declared AND actually read
    max_compression_ratio: float = 100.0  # per member and overall
    max_image_pixels: int = 4096 * 4096  # PNG declared width*height (decompression bomb guard)


@dataclass
class Member:
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


def ratio_exceeded(member: Member, limits: ArchiveLimits) -> bool:
    return member.size > RATIO_CHECK_FLOOR and member.size / max(member.packed, 1) > limits.max_compression_ratio


def display(raw: bytes) -> str:
    """A member name safe to show: undecodable bytes become U+FFFD, and control or
    invisible formatting characters (NUL, bidi overrides) are escaped, so a name can
    neither hide nor reorder text in a log line or a web page."""
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in ("Cc", "Cf") else c
        for c in raw.decode("utf-8", "replace")
    )
