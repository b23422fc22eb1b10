"""Extraction: checked images are written as ``dest/<Dataset>/<stem>.png`` under the organisers' expected names
(never a name taken from the archive), and everything written is removed again when the check fails."""

from __future__ import annotations

import logging
from pathlib import Path

from scoring.archive.naming import ExpectedImage

logger = logging.getLogger(__name__)


class DestError(Exception):
    """Writing to the extraction folder failed: not the submission's fault."""

    def __init__(self, original: OSError) -> None:
        super().__init__(str(original))
        self.original = original


def prepare_dest(dest: Path) -> Path:
    """``dest`` must be empty or absent (a ValueError otherwise: that is a caller bug, not bad input)."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"extraction folder must be empty or absent: {dest}")
    return dest


class Extraction:
    """The files and folders written under ``dest`` by one check, so that a failed check leaves nothing."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.written: list[Path] = []
        self.created_dirs: list[Path] = []

    def write(self, image: ExpectedImage, data: bytes | bytearray) -> None:
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
            raise DestError(exc) from exc

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
