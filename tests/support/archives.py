"""Build submission archives for tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image


def zip_folder(folder: Path, target: Path, *, skip: set[str] = frozenset(),
               extra: dict[str, bytes] | None = None, replace: dict[str, bytes] | None = None) -> Path:
    """Zip ``folder/<Dataset>/<stem>.png`` as a team would; ``skip``/``replace`` by relative path."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for png in sorted(folder.glob("*/*.png")):
            rel = f"{png.parent.name}/{png.name}"
            if rel in skip:
                continue
            archive.writestr(rel, (replace or {}).get(rel) or png.read_bytes())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


def png_bytes(size: tuple[int, int], mode: str = "RGB", color=(120, 90, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 128).save(buffer, format="PNG")
    return buffer.getvalue()
