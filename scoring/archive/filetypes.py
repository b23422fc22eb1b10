"""Name a file's type from its first bytes, for messages such as "is a JPEG image, not a PNG"."""

from __future__ import annotations

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (PNG_SIGNATURE, "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"BM", "BMP image"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000 image"),
    (b"PK\x03\x04", "zip archive"),
    (b"PK\x05\x06", "zip archive"),
    (b"PK\x07\x08", "zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"\x1f\x8b", "gzip file"),
    (b"BZh", "bzip2 file"),
    (b"\xfd7zXZ\x00", "xz file"),
    (b"\x28\xb5\x2f\xfd", "zstd file"),
    (b"%PDF", "PDF document"),
)

ARCHIVE_KINDS = frozenset(
    {"zip archive", "RAR archive", "7z archive", "gzip file", "bzip2 file", "xz file", "zstd file", "tar archive"}
)


def sniff(head: bytes) -> str | None:
    """Name a well-known file type from its first bytes (512 are enough for tar)."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP image"
    if head[257:262] == b"ustar":
        return "tar archive"
    return None
