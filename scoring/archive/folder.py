"""A participant's folder (``python -m scoring check`` on a folder), listed and read without following links."""

from __future__ import annotations

import os
import stat
from collections.abc import Generator
from pathlib import Path

from scoring.archive.members import ArchiveLimits, Member, display
from scoring.archive.naming import JUNK_DIRS
from scoring.archive.report import MemberError, Stop, human_bytes
from scoring.archive.zipreader import CHUNK


class DirSource:
    """A participant's folder, read without following links."""

    def __init__(self, root: Path, limits: ArchiveLimits) -> None:
        self.root, self.limits = root, limits

    def members(self) -> list[Member]:
        members: list[Member] = []
        stack: list[tuple[str, str]] = [("", os.fspath(self.root))]
        while stack:
            prefix, folder = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                raise Stop("read_error", f"The folder {prefix or '.'} cannot be listed: {exc.strerror}") from None
            subfolders: list[tuple[str, str]] = []
            for entry in entries:
                if len(members) >= self.limits.max_members:
                    raise Stop(
                        "too_many_members",
                        f"The folder has more than {self.limits.max_members} entries, the most allowed.",
                    )
                raw = os.fsencode(prefix + entry.name)
                shown = display(raw)
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
                        if entry.name not in JUNK_DIRS:
                            subfolders.append((prefix + entry.name + "/", entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        kind = "file"
                        size = entry.stat(follow_symlinks=False).st_size
                    else:
                        kind = "special"
                except OSError as exc:
                    raise Stop("read_error", f"{shown} cannot be inspected: {exc.strerror}", shown) from None
                if name is not None and kind == "dir":
                    name += "/"
                    shown += "/"
                members.append(Member(shown=shown, name=name, kind=kind, size=size, packed=size,
                                       fs_path=entry.path))  # fmt: skip
            stack.extend(reversed(subfolders))
        return members

    def read(self, member: Member) -> Generator[bytes, None, None]:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            # O_NOFOLLOW/O_NONBLOCK: a file swapped for a link or a FIFO since listing cannot hang or escape.
            fd = os.open(member.fs_path, flags | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise MemberError("read_error", f"cannot be opened: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise MemberError("special_member", "is not a regular file")
            produced = 0
            while True:
                try:
                    chunk = os.read(fd, CHUNK)
                except OSError as exc:
                    raise MemberError("read_error", f"cannot be read: {exc.strerror}") from None
                if not chunk:
                    return
                produced += len(chunk)
                if produced > self.limits.max_member_bytes:
                    raise MemberError(
                        "too_large", f"is larger than the {human_bytes(self.limits.max_member_bytes)} limit"
                    )
                yield chunk
        finally:
            os.close(fd)

