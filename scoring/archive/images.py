"""Image checks: is a submitted file the 8-bit RGB PNG of the expected size, and does it decode?

Pillow reads and validates the header (signature, IHDR and every chunk before the pixel data, CRCs
included) without decoding a pixel; the pixel limit is applied to the size it reads before any
decoder runs. What is read from the IHDR bytes themselves, Pillow having checked their CRC: the bit
depth (Pillow reports 16-bit RGB as mode ``RGB``, where the check must say ``bit_depth``), the colour
type (for the wording of the organisers' instructions: "16-bit grayscale", "palette"), and the
compression, filter and interlace methods, which Pillow does not check.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

from PIL import Image, UnidentifiedImageError

from scoring.archive.filetypes import ARCHIVE_KINDS, PNG_SIGNATURE, sniff
from scoring.archive.members import ArchiveLimits
from scoring.archive.naming import ExpectedImage

_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette (indexed colour)", 4: "grayscale with alpha", 6: "RGBA"}
# How Pillow reports damaged or truncated image data.
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# Pillow's chunk parsers index into attacker-controlled bytes (e.g. a short iCCP chunk after the image
# data raises IndexError): still a damaged file, not our bug.
_CHUNK_PARSER = (IndexError, KeyError, TypeError, ArithmeticError, MemoryError)


def declared_size(head: bytes) -> tuple[int, int] | None:
    """The (width, height) a PNG's IHDR declares, from its first 24 bytes; None when it is no PNG.

    For a PNG that is streamed rather than kept (a challenge bundle's inputs are hashed as they are read),
    where Pillow cannot be handed the whole file: the two fields are read by hand."""
    if not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR" or len(head) < 24:
        return None
    width, height = struct.unpack_from(">2I", head, 16)
    return width, height


def image_problems(data: bytes, image: ExpectedImage, limits: ArchiveLimits) -> list[tuple[str, str]]:
    """What is wrong with ``data`` as the PNG expected at ``image``, as (code, reason) pairs, before decoding."""
    if not data.startswith(PNG_SIGNATURE):
        kind = sniff(data[:512])  # Pillow restricted to PNG can only say "not identified": name what it is
        if kind in ARCHIVE_KINDS:
            return [("nested_archive", f"is a {kind}, not a PNG; put the PNG files in directly")]
        if not data:
            return [("not_png", "is empty (0 bytes)")]
        if kind is not None:
            return [("not_png", f"is a {kind}, not a PNG (renaming does not convert it); save it as PNG")]
        return [("not_png", "is not a PNG file")]
    if data[12:16] != b"IHDR":
        return [("corrupt_png", "is a damaged PNG: its IHDR header is missing")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel limit below decides
            with Image.open(io.BytesIO(data), formats=("PNG",)) as im:  # the header only: no pixel decoded
                (width, height), mode = im.size, im.mode
    except Image.DecompressionBombError:  # over Pillow's own limit: its size is the IHDR's
        (width, height), mode = struct.unpack_from(">2I", data, 16), ""
        if width * height <= limits.max_image_pixels:
            return [("too_large", "has too many pixels to decode safely")]
    except (UnidentifiedImageError, *_DAMAGED, *_CHUNK_PARSER):
        return [("corrupt_png", "is a damaged PNG: its IHDR header is invalid")]
    if width * height > limits.max_image_pixels:
        # A decompression bomb: never hand it to a decoder.
        return [
            (
                "too_large",
                f"declares {width}x{height} pixels, more than the limit of {limits.max_image_pixels}; "
                f"expected {image.width}x{image.height}",
            )
        ]
    depth, colour, compression, filtering, interlace = data[24:29]
    # Pillow decodes a PNG with an unknown compression or filter method, which libpng (and OpenCV) refuses.
    if not mode or width <= 0 or height <= 0 or compression or filtering or interlace not in (0, 1):
        return [("corrupt_png", "is a damaged PNG: its IHDR header is invalid")]
    found = []
    if colour != 2:
        depth_note = f"{depth}-bit " if depth != 8 else ""
        found.append(("wrong_mode", f"is {depth_note}{_COLOUR_TYPES.get(colour, mode)}; submit 8-bit RGB (no alpha)"))
    elif depth != 8:
        found.append(("bit_depth", f"is {depth}-bit RGB; submit 8-bit RGB"))
    if (width, height) != (image.width, image.height):
        found.append(("wrong_size", f"is {width}x{height}; expected {image.width}x{image.height} like its input"))
    return found


def decode_problem(data: bytes, image: ExpectedImage) -> tuple[str, str] | None:
    """Fully decode the PNG with Pillow; (code, reason) when it fails."""
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
    except _DAMAGED as exc:
        return "corrupt_png", f"is a damaged or incomplete PNG ({exc}); export it again"
    except _CHUNK_PARSER as exc:
        return "corrupt_png", f"is a damaged PNG ({type(exc).__name__} in a chunk); export it again"
    if mode != "RGB":
        return "wrong_mode", f"decodes as {mode}; submit 8-bit RGB (no alpha)"
    if size != (image.width, image.height):
        return "wrong_size", f"is {size[0]}x{size[1]}; expected {image.width}x{image.height} like its input"
    return None
