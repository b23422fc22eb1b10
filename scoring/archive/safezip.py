"""A zip of named files (a challenge bundle, an input set) read under the rules submissions are read under."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from scoring.archive.members import ArchiveLimits, Member, ratio_exceeded
from scoring.archive.naming import is_junk, key, name_problem, strip_dot_prefix
from scoring.archive.report import ArchiveProblem, MemberError, Stop, human_bytes
from scoring.archive.zipreader import ZipSource


class SafeZip:
    """A zip of named files read under the rules submissions are read under (``scoring.archive.naming``).

    Every member is judged from the central directory before any body is read: names must be valid UTF-8,
    relative, without ``..``, backslashes, control characters or case twins (bsdtar's ``./`` prefixes are
    dropped, operating-system clutter is skipped); links, special members, encryption and compressions other
    than Store, Deflate, BZip2 and LZMA are refused; declared sizes, the member count and the compression ratio
    are bounded by ``limits``. ``problems`` lists every refusal (scoring.archive's codes); the accepted files
    are read by name, never extracted under it, and each read stops at the member's declared size and checks
    its CRC. ``limits.max_archive_bytes`` bounds the zip file itself. ``source`` is a path or an open binary
    file (which stays the caller's to close).
    """

    def __init__(self, source: Path | BinaryIO, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.problems: list[ArchiveProblem] = []
        self._members: dict[str, Member] = {}
        self._fh: BinaryIO | None = None
        self._reader: ZipSource | None = None
        label = source.name if isinstance(source, Path) else "The zip"
        try:
            if isinstance(source, Path):
                size = source.stat().st_size
            else:
                source.seek(0, 2)  # a file-like's seek() need not return the offset (Django's File does not say)
                size = source.tell()
            if size == 0:
                raise Stop("empty", f"{label} is empty (0 bytes).")
            if size > limits.max_archive_bytes:
                raise Stop("too_large", f"{label} is {human_bytes(size)}; the limit is "
                                        f"{human_bytes(limits.max_archive_bytes)}.")
            fh: BinaryIO = source if not isinstance(source, Path) else open(source, "rb")  # noqa: SIM115
            if isinstance(source, Path):
                self._fh = fh  # ours to close (close())
            self._reader = ZipSource(fh, size, limits)
            members = self._reader.members()
        except Stop as stop:
            self.problems.append(ArchiveProblem(stop.code, stop.path, stop.message))
            return
        except OSError as exc:
            self.problems.append(ArchiveProblem("read_error", "", f"{label} cannot be read: {exc}"))
            return

        def refuse(code: str, member: Member, reason: str) -> None:
            self.problems.append(ArchiveProblem(code, member.shown, f"{member.shown} {reason}."))

        total = sum(m.size for m in members)
        if total > limits.max_total_uncompressed:
            self.problems.append(ArchiveProblem("too_large", "", f"The zip would unpack to {human_bytes(total)}; "
                                                f"the limit is {human_bytes(limits.max_total_uncompressed)}."))
        folded: dict[str, str] = {}
        for member in members:
            if member.name is None:
                refuse("bad_name_encoding", member, "has a name that is too long or not valid UTF-8")
                continue
            name = strip_dot_prefix(member.name)
            if not name and member.kind == "dir":
                continue  # the "./" entry itself
            problem = name_problem(name, member.kind == "dir")
            if problem is not None:
                refuse(problem[0], member, problem[1])
            elif member.kind == "symlink":
                refuse("symlink", member, "is a symbolic link; only regular files are allowed")
            elif member.kind == "special":
                refuse("special_member", member, "is not a regular file or folder")
            elif member.issue is not None:
                refuse(member.issue[0], member, member.issue[1])
            elif member.kind == "dir" or is_junk(name.split("/"), member.kind):
                continue
            elif key(name).casefold() in folded:
                refuse("case_duplicate" if key(name) not in self._members else "duplicate",
                       member, f"clashes with {folded[key(name).casefold()]}")
            elif member.size > limits.max_member_bytes:
                refuse("too_large", member, f"is {human_bytes(member.size)}; the limit per file is "
                                            f"{human_bytes(limits.max_member_bytes)}")
            elif ratio_exceeded(member, limits):
                refuse("zip_bomb", member, f"would unpack to {member.size / max(member.packed, 1):.0f}"
                                           " times its compressed size")
            else:
                folded[key(name).casefold()] = member.shown
                self._members[key(name)] = member

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
        except MemberError as exc:
            raise ArchiveMemberError(ArchiveProblem(exc.code, member.shown, f"{member.shown} {exc.message}.")) from None

    def read(self, name: str) -> bytes:
        return b"".join(self.stream(name))


class ArchiveMemberError(Exception):
    """A member of a SafeZip could not be read as its headers promised."""

    def __init__(self, problem: ArchiveProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem
