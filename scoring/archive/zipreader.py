"""A zip reader that judges every entry from the central directory before any member body is read.

It lists ``Member`` entries (sizes, names, kinds, a header problem if any) and streams one member's
bytes, never more than declared, checking its CRC. Store, Deflate, BZip2 and LZMA are read, each
decompressed in bounded steps; Deflate64 is refused with the commands that re-zip a folder.

Why not the standard library's ``zipfile`` here (each case is a test in tests/scoring/test_archive_hostile.py
or test_archive_tools.py):

* ``zipfile.ZipFile`` decodes names itself: it cuts a name at its first NUL (``"b.png\\0.exe"`` becomes
  ``b.png``) and raises for the whole archive on one flagged-UTF-8 name that is not UTF-8, where the check
  must name the member (``bad_name``, ``bad_name_encoding``). Here names are kept as raw bytes.
* It reads and keeps the whole central directory before any limit applies; here the end record's entry
  count is checked first (``too_many_members``) and a split zip is named as such.
* The project's Python (3.11.7) ``zipfile`` does not detect overlapping entries (a zip bomb); ``_check_layout`` does.
* ``ZipExtFile`` compares only the local header's name with the central directory, not its method or
  encryption flag (``test_local_method_disagrees``, ``test_encrypted_only_in_local_header``), and it
  decompresses BZip2 and LZMA without an output bound: one small read of a tiny member may unpack hundreds
  of MiB at once (``test_bzip2_and_lzma_output_is_bounded_by_the_declared_size``).
"""

from __future__ import annotations

import bz2
import lzma
import os
import stat
import struct
import zlib
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO

from scoring.archive.filetypes import sniff
from scoring.archive.members import ArchiveLimits, Member, display
from scoring.archive.naming import MAX_NAME_BYTES
from scoring.archive.report import MemberError, Stop, human_bytes

CHUNK = 64 * 1024

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
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # see ZipSource._read_central
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


class ZipSource:
    """Reads a zip from its central directory, checking every header field it uses."""

    def __init__(self, fh: BinaryIO, size: int, limits: ArchiveLimits) -> None:
        self.fh, self.size, self.limits = fh, size, limits

    def _read_at(self, offset: int, length: int) -> bytes:
        self.fh.seek(offset)
        return self.fh.read(length)

    def members(self) -> list[Member]:
        head = self._read_at(0, 512)
        if not head.startswith((_LOCAL_SIG, _EOCD_SIG, _SPAN_SIG)):
            kind = sniff(head)
            what = f"a {kind}" if kind else "not a zip archive"
            raise Stop("not_zip", f"The uploaded file is {what}; upload a .zip of <Dataset>/<stem>.png images.")
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
            raise Stop(
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
                    raise Stop("corrupt_zip", "The zip's ZIP64 end record is damaged or points elsewhere.")
                record = self._read_at(z_offset, _ZIP64_EOCD.size)
                if len(record) != _ZIP64_EOCD.size or record[:4] != _ZIP64_EOCD_SIG:
                    raise Stop("corrupt_zip", "The zip's ZIP64 end record is missing or damaged.")
                _, _, _, _, disk, cd_disk, entries_here, entries, cd_size, cd_offset = _ZIP64_EOCD.unpack(record)
                cd_end_limit = z_offset
        if disk != 0 or cd_disk != 0 or entries_here != entries:
            raise Stop("corrupt_zip", "The zip is split into several parts; upload a single .zip file.")
        if entries > self.limits.max_members:
            raise Stop(
                "too_many_members",
                f"The zip has {entries} entries; at most {self.limits.max_members} are allowed.",
            )
        if cd_offset + cd_size > cd_end_limit:
            raise Stop(
                "truncated",
                "The zip's table of contents points past the end of the file: it is cut off or damaged.",
            )
        return cd_offset, cd_size, entries

    def _read_central(self, cd_offset: int, cd_size: int, declared: int) -> list[Member]:
        members: list[Member] = []
        self.fh.seek(cd_offset)
        pos, end = cd_offset, cd_offset + cd_size
        while pos < end:
            if len(members) >= self.limits.max_members:
                raise Stop(
                    "too_many_members",
                    f"The zip has more than {self.limits.max_members} entries, the most allowed.",
                )
            header = self.fh.read(_CENTRAL.size)
            if pos + _CENTRAL.size > end or len(header) != _CENTRAL.size or header[:4] != _CENTRAL_SIG:
                raise Stop("corrupt_zip", "The zip's table of contents (central directory) is damaged.")
            (
                _, _, _, flags, method, _, _, crc, packed, size,
                name_len, extra_len, comment_len, disk, _, external, offset,
            ) = _CENTRAL.unpack(header)  # fmt: skip
            pos += _CENTRAL.size + name_len + extra_len + comment_len
            if pos > end:
                raise Stop("corrupt_zip", "The zip's table of contents (central directory) is damaged.")
            raw_name = self.fh.read(name_len)
            extra = self.fh.read(extra_len)
            self.fh.seek(comment_len, os.SEEK_CUR)
            if len(raw_name) != name_len or len(extra) != extra_len:
                raise Stop("corrupt_zip", "The zip's table of contents (central directory) is damaged.")
            member = self._member(raw_name, flags, method, crc, packed, size, disk, external, offset, extra)
            members.append(member)
        if len(members) != declared:
            raise Stop(
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
    ) -> Member:
        shown = display(raw_name[:MAX_NAME_BYTES])
        name: str | None = None
        if len(raw_name) <= MAX_NAME_BYTES:
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
        return Member(
            shown=shown, name=name, kind=kind, size=size, packed=packed, issue=issue,
            raw_name=raw_name, method=method, flags=flags, crc=crc, offset=offset,
        )  # fmt: skip

    @staticmethod
    def _check_layout(members: list[Member], cd_offset: int) -> None:
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

    def read(self, member: Member) -> Generator[bytes, None, None]:
        """The member's uncompressed bytes, never more than its declared size."""
        header = self._read_at(member.offset, _LOCAL.size)
        if len(header) != _LOCAL.size or header[:4] != _LOCAL_SIG:
            raise MemberError("corrupt_zip", "cannot be read: its local header is missing (damaged zip)")
        _, _, flags, method, _, _, _, _, _, name_len, extra_len = _LOCAL.unpack(header)
        if flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
            raise MemberError("encrypted", "is encrypted; upload an archive without a password")
        if method != member.method or self.fh.read(name_len) != member.raw_name:
            # Two headers that disagree can make different tools see different files.
            raise MemberError("corrupt_zip", "has a local header that disagrees with the table of contents")
        start = member.offset + _LOCAL.size + name_len + extra_len
        if start + member.packed > member.limit:
            raise MemberError("zip_bomb", "has data that runs into another entry, a zip-bomb technique")
        self.fh.seek(start)
        remaining, produced, crc = member.packed, 0, 0
        decoder = Decoder(method, member.flags, member.size)
        while remaining:
            chunk = self.fh.read(min(CHUNK, remaining))
            if not chunk:
                raise MemberError("truncated", "is cut off: the zip ends inside its data")
            remaining -= len(chunk)
            for out in decoder.feed(chunk):
                produced += len(out)
                if produced > member.size:
                    raise MemberError("corrupt_zip", f"unpacks to more than its declared {human_bytes(member.size)}")
                crc = zlib.crc32(out, crc)
                yield out
            if decoder.eof and (remaining or decoder.unused_data):
                raise MemberError("corrupt_zip", "has unexpected bytes after its compressed data")
        if not decoder.finished(produced):
            raise MemberError("corrupt_zip", "has compressed data that ends early (damaged zip)")
        if produced != member.size:
            raise MemberError("corrupt_zip", "unpacks to fewer bytes than declared (damaged zip)")
        if crc != member.crc:
            raise MemberError("corrupt_zip", "fails its checksum (CRC): the zip is damaged")


class Decoder:
    """One member's decompressor (Store, Deflate, BZip2, LZMA), fed chunk by chunk.

    Every call to a decompressor asks for at most ``CHUNK`` bytes, so one small chunk of
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
            raise MemberError("corrupt_zip", f"has damaged compressed data ({exc})") from None

    def _bounded(self, data: bytes) -> Iterator[bytes]:
        inner = self.inner
        if self.method == _METHOD_DEFLATED:
            while not inner.eof:
                out = inner.decompress(data, CHUNK)
                data = inner.unconsumed_tail
                if out:
                    yield out
                if len(out) < CHUNK and not data:
                    return  # input used up and no output pending
            return
        while not inner.eof:
            out = inner.decompress(data, CHUNK)
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
            raise MemberError("corrupt_zip", "has a damaged LZMA header")
        if len(self.header) < 4 + props_size:
            return b""
        props, rest = self.header[4:9], self.header[9:]
        lclppb, dict_size = props[0], struct.unpack_from("<L", props, 1)[0]
        if lclppb >= 9 * 5 * 5:
            raise MemberError("corrupt_zip", "has a damaged LZMA header")
        # A member of N bytes never refers further back than N: a larger declared dictionary would
        # only cost memory, so it is capped at the member's size.
        filters = [{
            "id": lzma.FILTER_LZMA1, "lc": lclppb % 9, "lp": lclppb // 9 % 5, "pb": lclppb // 45,
            "dict_size": max(4096, min(dict_size, self.size, 1 << 30)),
        }]
        self.inner = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=filters)
        self.header = b""
        return rest

