"""The check of a participant's submission: every member against the expected ``<Dataset>/<stem>.png`` images.

It drives a reader (zip or folder), applies the archive-wide limits from the headers before any body is
read, matches members to expected names under the naming policy, checks each image and, with a
destination and a clean result, extracts them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scoring.archive import images as image_checks
from scoring.archive.extract import DestError, Extraction, prepare_dest
from scoring.archive.folder import DirSource
from scoring.archive.members import RATIO_CHECK_FLOOR, ArchiveLimits, Member, ratio_exceeded
from scoring.archive.naming import (
    ARCHIVE_SUFFIXES,
    MAX_NAME_BYTES,
    ExpectedImage,
    is_junk,
    name_problem,
    strip_dot_prefix,
    validate_expected,
    wrapping_folder,
)
from scoring.archive.naming import key as name_key
from scoring.archive.report import ArchiveProblem, CheckReport, MemberError, Stop, capped_report, human_bytes
from scoring.archive.zipreader import ZipSource
from scoring.inputs import InputImage, InputSetError, scan_inputs

logger = logging.getLogger(__name__)


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
    validate_expected(expected_list)
    run = _Run(expected_list, limits, Extraction(prepare_dest(dest)) if dest is not None else None)
    try:
        run.execute(Path(source))
    except Stop as stop:
        run.add(stop.code, stop.path, stop.message)
    except DestError as exc:
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
    return capped_report(run.problems, run.checked)


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


@dataclass
class _Run:
    expected: list[ExpectedImage]
    limits: ArchiveLimits
    extraction: Extraction | None
    problems: list[ArchiveProblem] = field(default_factory=list)
    checked: int = 0

    def add(self, code: str, path: str, message: str) -> None:
        self.problems.append(ArchiveProblem(code, path, message))

    def member_problem(self, code: str, member: Member, reason: str) -> None:
        self.add(code, member.shown, f"{member.shown} {reason}.")

    def remove_written(self) -> None:
        if self.extraction is not None:
            self.extraction.remove_written()

    # ---- driving

    def execute(self, source: Path) -> None:
        if source.is_dir():
            reader: ZipSource | DirSource = DirSource(source, self.limits)
            self.check_members(reader, reader.members(), archive_bytes=None)
            return
        if not source.is_file():
            raise Stop("not_found", f"The submission {source.name or source} does not exist.")
        try:
            size = source.stat().st_size
            if size == 0:
                raise Stop("empty", "The uploaded file is empty (0 bytes).")
            if size > self.limits.max_archive_bytes:
                raise Stop(
                    "too_large",
                    f"The uploaded file is {human_bytes(size)}; the limit is "
                    f"{human_bytes(self.limits.max_archive_bytes)}.",
                )
            with open(source, "rb") as fh:
                reader = ZipSource(fh, size, self.limits)
                self.check_members(reader, reader.members(), archive_bytes=size)
        except OSError as exc:
            raise Stop("read_error", f"The uploaded file cannot be read: {exc.strerror or exc}") from None

    def check_members(self, reader: ZipSource | DirSource, members: list[Member], archive_bytes: int | None) -> None:
        if not members:
            raise Stop("empty", "The submission contains no files.")
        blocked = self.check_totals(members, archive_bytes)
        images = self.classify(members)
        if blocked:
            return  # archive-level limits exceeded: do not decompress anything
        for member, image in images:
            self.check_image(reader, member, image)

    def check_totals(self, members: list[Member], archive_bytes: int | None) -> bool:
        """Archive-wide limits from the headers; True when bodies must not be read."""
        total = sum(m.size for m in members)
        if total > self.limits.max_total_uncompressed:
            self.add(
                "too_large",
                "",
                f"The submission would unpack to {human_bytes(total)}; the limit is "
                f"{human_bytes(self.limits.max_total_uncompressed)}.",
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

    def ratio_exceeded(self, member: Member) -> bool:
        return ratio_exceeded(member, self.limits)

    def classify(self, members: list[Member]) -> list[tuple[Member, ExpectedImage]]:
        """Name, type, duplicate and matching rules; returns the images to read."""
        expected = {name_key(image.relpath): image for image in self.expected}
        datasets = {name.split("/")[0] for name in expected}

        named: list[tuple[Member, list[str]]] = []
        for member in members:
            if member.name is None:
                if len(member.raw_name) > MAX_NAME_BYTES:
                    self.member_problem("bad_name", member, "has a name that is too long")
                else:
                    self.member_problem(
                        "bad_name_encoding",
                        member,
                        "has a name that is not valid UTF-8; re-create the zip with a tool that stores "
                        "UTF-8 names (7-Zip, macOS Finder, `zip` on Linux)",
                    )
                continue
            name = strip_dot_prefix(member.name)
            if not name and member.kind == "dir":
                continue  # the "./" entry itself
            problem = name_problem(name, member.kind == "dir")
            if problem is not None:
                self.member_problem(problem[0], member, problem[1])
                continue
            parts = name_key(name).rstrip("/").split("/")
            named.append((member, parts))

        top = wrapping_folder([(p, m.kind) for m, p in named if not is_junk(p, m.kind)], datasets)
        if top is not None:
            named = [(m, p[1:] if p[0] == top and not is_junk(p, m.kind) else p) for m, p in named]

        folded_expected = {key.casefold(): image for key, image in expected.items()}
        submitted = {"/".join(p) for m, p in named if m.kind == "file"}
        present: set[str] = set()  # expected paths that were submitted, even if faulty
        seen: dict[str, str] = {}
        seen_folded: dict[str, str] = {}
        folders: set[str] = set()
        files: list[tuple[Member, str]] = []
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
            if is_junk(parts, member.kind):
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
                if image is not None and name_key(image.relpath) in submitted:
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
            raise Stop("empty", "The submission contains no files (only folders or system files).")

        by_stem = {key.rsplit("/", 1)[1][: -len(".png")]: image for key, image in expected.items()}
        images: list[tuple[Member, ExpectedImage]] = []
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
                    f"is {human_bytes(member.size)}; the limit per file is "
                    f"{human_bytes(self.limits.max_member_bytes)}",
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
            elif key.lower().endswith(ARCHIVE_SUFFIXES):
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

    def check_image(self, reader: ZipSource | DirSource, member: Member, image: ExpectedImage) -> None:
        self.checked += 1
        data = bytearray()
        stream = reader.read(member)
        try:
            for chunk in stream:  # bounded by the member's declared size (zip) or the member limit (folder)
                data += chunk
        except MemberError as exc:  # zip damage is named as such, whatever the bytes read so far
            self.member_problem(exc.code, member, exc.message)
            return
        finally:
            stream.close()
        found = image_checks.image_problems(bytes(data), image, self.limits)
        if found:
            for code, reason in found:
                self.member_problem(code, member, reason)
            return
        decoded = image_checks.decode_problem(bytes(data), image)
        if decoded is not None:
            self.member_problem(decoded[0], member, decoded[1])
            return
        if self.extraction is not None and not self.problems:
            self.extraction.write(image, data)
