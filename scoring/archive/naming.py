"""The naming policy of participant archives and organizer input sets: one place for what a member may be called.

Both are laid out ``<Dataset>/<stem>.png``, may be wrapped in one folder (a zipped results or inputs
folder) and may carry bsdtar's ``./`` prefixes; operating-system clutter (``JUNK_DIRS``, ``JUNK_FILES``,
AppleDouble ``._*`` files) is ignored in both. Names are compared in NFC (macOS stores them decomposed).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

MAX_NAME_BYTES = 1024
MAX_COMPONENT_BYTES = 255

JUNK_DIRS = frozenset({"__MACOSX"})
JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
ARCHIVE_SUFFIXES = (".zip", ".7z", ".rar", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".lz4")
_DRIVE = re.compile(r"^[A-Za-z]:")

# Input sets only: their names become the expected names of every submission, the scorer's file names and
# the CSV's stems, so they keep to a portable set of characters (a participant's name only has to match one).
INPUT_NAME = re.compile(
    r"^(?P<dataset>[A-Za-z0-9][A-Za-z0-9_.+-]{0,99})/(?P<stem>[A-Za-z0-9][A-Za-z0-9_.+-]{0,199})\.png$")

T = TypeVar("T")


@dataclass(frozen=True)
class ExpectedImage:
    relpath: str  # "<Dataset>/<stem>.png"
    width: int
    height: int


def validate_expected(expected: Sequence[ExpectedImage]) -> None:
    """A ValueError (a caller bug) unless each expected path is a distinct ``<Dataset>/<stem>.png``, sized."""
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
        name = key(image.relpath)
        if name in seen:
            raise ValueError(f"expected image listed twice: {image.relpath}")
        seen.add(name)


def key(name: str) -> str:
    """The form names are compared in: macOS stores them decomposed (NFD)."""
    return unicodedata.normalize("NFC", name)


def strip_dot_prefix(name: str) -> str:
    """bsdtar (Windows' ``tar -a``, macOS) writes every name as ``./<path>``: harmless, so it is dropped."""
    while name.startswith("./"):
        name = name[2:]
    return name


def name_problem(name: str, is_dir: bool) -> tuple[str, str] | None:
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
        return "path_escape", "contains '..', which would point outside the archive's folder"
    if "\\" in name:
        return "bad_name", "contains a backslash; zip paths must use forward slashes"
    parts = body.split("/")
    if not body or any(p in ("", ".") for p in parts):
        return "bad_name", "has an empty or '.' path component"
    if len(name.encode()) > MAX_NAME_BYTES or any(len(p.encode()) > MAX_COMPONENT_BYTES for p in parts):
        return "bad_name", "is too long"
    return None


def is_junk(parts: Sequence[str], kind: str) -> bool:
    """Operating-system clutter that is silently ignored (never read or extracted)."""
    if any(part in JUNK_DIRS for part in parts):
        return True
    return kind == "file" and (parts[-1] in JUNK_FILES or parts[-1].startswith("._"))


def wrapping_folder(entries: Sequence[tuple[Sequence[str], str]], datasets: set[str] | None) -> str | None:
    """The one folder wrapping everything (``results/CelebA/x.png``), to be stripped, or None.

    ``entries`` are (path parts, kind) of the members that are not junk. A participant's archive is compared
    with the known datasets: a single top folder that is not a dataset wraps them. An input set has no known
    datasets: its top folder wraps them when every file lies two levels below it (``inputs/<Dataset>/<stem>.png``).
    """
    tops = {parts[0] for parts, _ in entries}
    if len(tops) != 1:
        return None
    top = next(iter(tops))
    if datasets is None:
        files = [parts for parts, kind in entries if kind == "file"]
        return top if files and all(len(parts) == 3 for parts in files) else None
    if top in datasets or not all(len(parts) > 1 or kind == "dir" for parts, kind in entries):
        return None
    return top
