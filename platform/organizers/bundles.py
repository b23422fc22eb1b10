"""Challenge bundles: one zip that carries a challenge whole (pages, phases, limits, profiles, input sets,
baselines), to re-create it elsewhere or as next year's edition. Not its participants, teams or submissions.

The format (docs/bundles.md, schema docs/bundle.schema.json): ``challenge.json`` plus ``inputs/<sha256>.png``
and ``baselines/<sha256>.zip``. Phase dates are offsets in seconds from ``start``, the first phase's opening,
so the importer chooses the dates. This module reads: it builds a bundle from the database, and it checks a
bundle completely (``read_bundle``) before organizers.services.import_bundle writes anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from competitions.models import Challenge, InputImage, Phase
from competitions.services import page_slug
from competitions.storage import sha256_of_stored
from organizers.selectors import input_archive_limits
from scoring.archive import ArchiveLimits, ArchiveMemberError, SafeZip
from scoring.archive.images import declared_size
from scoring.profile import PRESETS, ScoringProfile, get_profile
from submissions.models import Submission

FORMAT = "ntire-fr-challenge-bundle"
SCHEMA_VERSION = 1
MANIFEST = "challenge.json"
SCHEMA_PATH = Path(settings.BASE_DIR) / "docs" / "bundle.schema.json"
CHUNK = 1 << 20
# What a part of a manifest the schema refused raises when the meaning checks look at it.
_MALFORMED = (KeyError, TypeError, AttributeError, ValueError)


@dataclass(frozen=True)
class BundleProblem:
    code: str  # schema, json, archive codes (path_escape, symlink, ...), missing, extra, checksum, ...
    path: str  # where: "$.phases[0].datasets[1].identity_threshold", a member name, or "--slug"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class BundleInvalid(Exception):
    """The bundle was refused; ``problems`` lists every problem found, each with its path."""

    code = "bundle_invalid"

    def __init__(self, problems: list[BundleProblem]) -> None:
        self.problems = problems
        super().__init__(f"The bundle was refused ({len(problems)} problem(s)):\n" + "\n".join(map(str, problems)))


# --------------------------------------------------------------------------- limits


def bundle_limits() -> ArchiveLimits:
    """The zip's limits; FR_BUNDLE_LIMITS (settings) overrides any of them. A baseline archive is also held to
    its phase's max_archive_bytes, an input image to the input-set limits (FR_INPUT_SET_LIMITS)."""
    defaults = {"max_archive_bytes": 16 * 1024**3, "max_members": 50_000, "max_total_uncompressed": 24 * 1024**3,
                "max_member_bytes": 8 * 1024**3, "max_compression_ratio": 100.0}
    return ArchiveLimits(**{**defaults, **(getattr(settings, "FR_BUNDLE_LIMITS", None) or {})})


MAX_MANIFEST_BYTES = 64 * 1024**2


# --------------------------------------------------------------------------- the schema (a small validator)


@cache
def manifest_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})


def schema_problems(value: Any, schema: dict[str, Any] | None = None, path: str = "$") -> list[BundleProblem]:
    """Every place ``value`` breaks the JSON Schema (the draft 2020-12 keywords docs/bundle.schema.json uses).

    The venv has no ``jsonschema`` package and adding one rebuilds everyone's environment, so this covers the
    keywords the schema uses and raises on any other, so the schema cannot silently outgrow it."""
    root = manifest_schema() if schema is None else schema
    problems: list[BundleProblem] = []
    _check(value, root, path, root, problems)
    return problems


def _check(value: Any, schema: dict[str, Any], path: str, root: dict[str, Any], out: list[BundleProblem]) -> None:
    def fail(message: str) -> None:
        out.append(BundleProblem("schema", path, message))

    unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
    if unknown:
        raise ValueError(f"schema keyword(s) not supported by the bundle validator: {', '.join(sorted(unknown))}")
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        _check(value, target, path, root, out)
    if "anyOf" in schema:
        if not any(not _collect(value, option, path, root) for option in schema["anyOf"]):
            fail("matches none of the allowed forms")
        return
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            fail(f"must be of type {' or '.join(types)}, not {_json_type(value)}")
            return
    if "const" in schema and value != schema["const"]:
        fail(f"must be {json.dumps(schema['const'])}")
    if "enum" in schema and value not in schema["enum"]:
        fail(f"must be one of {', '.join(json.dumps(v) for v in schema['enum'])}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            fail(f"must have at least {schema['minLength']} character(s)")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            fail(f"must have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            fail(f"does not match {schema['pattern']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            fail(f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            fail(f"must be at most {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            fail(f"must be more than {schema['exclusiveMinimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            fail(f"must have at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            fail(f"must have at most {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                _check(item, schema["items"], f"{path}[{index}]", root, out)
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                out.append(BundleProblem("schema", f"{path}.{name}", "is required"))
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], f"{path}.{name}", root, out)
            elif extra is False:
                out.append(BundleProblem("schema", f"{path}.{name}", "is not a known field"))
            elif isinstance(extra, dict):
                _check(item, extra, f"{path}.{name}", root, out)


_KEYWORDS = frozenset({"$ref", "anyOf", "type", "const", "enum", "minLength", "maxLength", "pattern", "minimum",
                       "maximum", "exclusiveMinimum", "minItems", "maxItems", "items", "required", "properties",
                       "additionalProperties"})


def _collect(value: Any, schema: dict[str, Any], path: str, root: dict[str, Any]) -> list[BundleProblem]:
    found: list[BundleProblem] = []
    _check(value, schema, path, root, found)
    return found


def _json_type(value: Any) -> str:
    return next((name for name in ("null", "boolean", "integer", "number", "string", "array", "object")
                 if _TYPES[name](value)), type(value).__name__)


# --------------------------------------------------------------------------- export (reads only)


def _start(challenge: Challenge, phases: list[Phase]) -> datetime:
    moments = [p.opens_at for p in phases] or [challenge.created_at]
    return min(moments).replace(microsecond=0)


def _offset(moment: datetime | None, start: datetime) -> int | None:
    return None if moment is None else max(0, int((moment - start).total_seconds()))


def baseline_submissions(phase: Phase) -> list[Submission]:
    """Each baseline team's latest submission of the phase that was not cancelled or rejected: its row."""
    latest: dict[int, Submission] = {}
    rows = (Submission.objects.filter(phase=phase, team__is_baseline=True)
            .exclude(state__in=(Submission.State.CANCELLED, Submission.State.REJECTED))
            .select_related("team").order_by("created_at", "id"))
    for submission in rows:
        latest[submission.team_id] = submission
    return sorted(latest.values(), key=lambda s: s.team.name)


def challenge_manifest(challenge: Challenge) -> tuple[dict[str, Any], dict[str, str]]:
    """The manifest and the files it names: bundle member -> storage name (identical content shared once)."""
    phases = list(challenge.phases.order_by("order", "id"))
    start = _start(challenge, phases)
    files: dict[str, str] = {}
    manifest_phases = []
    for phase in phases:
        datasets = []
        for dataset in phase.datasets.order_by("name"):
            images = []
            for image in InputImage.objects.filter(dataset=dataset).order_by("stem"):
                member = f"inputs/{image.sha256}.png"
                files.setdefault(member, image.file.name)
                images.append({"stem": image.stem, "width": image.width, "height": image.height,
                               "sha256": image.sha256, "file": member,
                               "landmarks": [list(p) for p in image.landmarks], "box": list(image.box or [])})
            datasets.append({"name": dataset.name, "identity_threshold": dataset.identity_threshold,
                             "images": images})
        baselines = []
        for submission in baseline_submissions(phase):
            sha256 = submission.archive_sha256 or sha256_of_stored(submission.archive.name)
            member = f"baselines/{sha256}.zip"
            files.setdefault(member, submission.archive.name)
            # An empty description shows as the team's name (add_baseline's rule): export what is shown.
            baselines.append({"name": submission.team.name,
                              "description": submission.description or submission.team.name,
                              "archive": member, "sha256": sha256, "size": submission.archive_size})
        manifest_phases.append({
            "slug": phase.slug, "name": phase.name, "kind": phase.kind, "order": phase.order,
            "opens_after_s": _offset(phase.opens_at, start), "closes_after_s": _offset(phase.closes_at, start),
            "limits": {"max_per_day": phase.max_per_day, "max_total": phase.max_total,
                       "max_running": phase.max_running, "max_archive_bytes": phase.max_archive_bytes},
            "visibility": phase.visibility, "selection": phase.selection,
            "scoring_profile": phase.scoring_profile,
            "profile_snapshot": phase.profile_snapshot or get_profile(phase.scoring_profile).to_dict(),
            "shown_metrics": list(phase.shown_metrics or []), "datasets": datasets, "baselines": baselines,
        })
    manifest = {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "start": start.isoformat().replace("+00:00", "Z"),
        "challenge": {"slug": challenge.slug, "title": challenge.title, "description": challenge.description,
                      "max_team_size": challenge.max_team_size, "registration_mode": challenge.registration_mode,
                      "pages": [{"kind": page.kind, "slug": page.slug, "title": page.title, "order": page.order,
                                 "body": page.body} for page in challenge.pages.order_by("order", "id")]},
        "phases": manifest_phases,
    }
    return manifest, files


def export_bundle(challenge: Challenge, out: IO[bytes]) -> dict[str, Any]:
    """Write the challenge's bundle to ``out`` (a seekable binary file); returns its manifest.

    Each stored file is checked against the checksum the manifest gives it while it is copied."""
    manifest, files = challenge_manifest(challenge)
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                         compress_type=zipfile.ZIP_DEFLATED)
        for member, stored in sorted(files.items()):
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED  # PNG and zip are compressed already
            digest = hashlib.sha256()
            with default_storage.open(stored, "rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while block := source.read(CHUNK):
                    digest.update(block)
                    target.write(block)
            if digest.hexdigest() != member.split("/")[1].split(".")[0]:
                raise RuntimeError(f"stored file {stored} does not match its recorded sha256 ({member})")
    return manifest


# --------------------------------------------------------------------------- reading a bundle (checks everything)


@dataclass
class Bundle:
    """A bundle that passed every check: its manifest and the zip to copy the files from."""

    manifest: dict[str, Any]
    archive: SafeZip
    problems: list[BundleProblem] = field(default_factory=list)

    def stream(self, member: str) -> Iterator[bytes]:
        return self.archive.stream(member)

    def close(self) -> None:
        self.archive.close()


def parse_start(text: str) -> datetime:
    """``2026-01-15`` (midnight UTC) or an ISO datetime; ValueError otherwise."""
    try:
        moment = parse_datetime(text.strip())  # Python 3.11's fromisoformat: a plain date is its midnight
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError(f"not a date or ISO datetime: {text!r}")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def read_bundle(path: Path, *, profiles: dict[str, str] | None = None) -> Bundle:
    """Check the bundle at ``path`` completely: the zip (archive rules), the manifest (schema and meaning),
    every named file (present, checksum, PNG size) and nothing unnamed. BundleInvalid lists every problem.

    ``profiles``: phase slug (or ``*``) -> a preset to score with instead of the bundle's; checked too."""
    archive = SafeZip(Path(path), bundle_limits())
    problems = [BundleProblem(p.code, p.path, p.message) for p in archive.problems]
    manifest: Any = None
    if MANIFEST not in archive.names():
        if not any(p.path == MANIFEST for p in problems):
            problems.append(BundleProblem("missing", MANIFEST, "the bundle has no challenge.json manifest"))
    elif archive.size(MANIFEST) > MAX_MANIFEST_BYTES:
        problems.append(BundleProblem("too_large", MANIFEST, f"more than {MAX_MANIFEST_BYTES} bytes"))
    else:
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except ArchiveMemberError as exc:
            problems.append(BundleProblem(exc.problem.code, MANIFEST, exc.problem.message))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(BundleProblem("json", MANIFEST, f"not valid JSON: {exc}"))
    if manifest is not None:
        problems += schema_problems(manifest)
        # The checks below skip what the schema already refused, so one run reports every kind of problem.
        problems += _meaning_problems(manifest, profiles or {})
        problems += _file_problems(manifest, archive)
    if problems:
        archive.close()
        raise BundleInvalid(problems)
    return Bundle(manifest, archive)


def _meaning_problems(manifest: dict[str, Any], profiles: dict[str, str]) -> list[BundleProblem]:
    """What the schema cannot say: unique names, a known profile that agrees with its thresholds, dates."""
    problems: list[BundleProblem] = []
    phases = _items(manifest, "phases")
    slugs = [p.get("slug") for p in phases]
    for name, to in profiles.items():
        if name != "*" and name not in slugs:
            problems.append(BundleProblem("profile", f"--profile {name}={to}", "the bundle has no such phase"))
        if to not in PRESETS:
            problems.append(BundleProblem("profile", f"--profile {name}={to}",
                                          f"unknown profile; known: {', '.join(PRESETS)}"))
    for i, phase in enumerate(phases):
        with contextlib.suppress(*_MALFORMED):  # the schema's problems say where
            _phase_meaning(f"$.phases[{i}]", phase, slugs, problems)
    pages = _items(manifest.get("challenge"), "pages")
    # The addresses the pages will have (save_page's rule: the fixed kinds keep their own), not the ones written.
    page_slugs = [page_slug(str(p.get("kind")), str(p.get("slug") or ""), str(p.get("title") or "")) for p in pages]
    fixed_kinds = [p.get("kind") for p in pages if p.get("kind") != "extra"]
    for i, page in enumerate(pages):
        if page_slugs.count(page_slugs[i]) > 1:
            problems.append(BundleProblem("duplicate", f"$.challenge.pages[{i}].slug",
                                          f"page slug {page_slugs[i]!r} appears twice"))
        if page.get("kind") != "extra" and fixed_kinds.count(page.get("kind")) > 1:
            problems.append(BundleProblem("duplicate", f"$.challenge.pages[{i}].kind",
                                          f"a challenge has one {page.get('kind')} page"))
    return problems


def _items(data: Any, key: str) -> list[dict[str, Any]]:
    """``data[key]``'s objects, or nothing when the schema refused them."""
    value = data.get(key) if isinstance(data, dict) else None
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _phase_meaning(at: str, phase: dict[str, Any], slugs: list[Any], problems: list[BundleProblem]) -> None:
    add = problems.append
    if slugs.count(phase["slug"]) > 1:
        add(BundleProblem("duplicate", f"{at}.slug", f"phase slug {phase['slug']!r} appears twice"))
    if phase["scoring_profile"] not in PRESETS:
        add(BundleProblem("profile", f"{at}.scoring_profile",
                          f"unknown profile {phase['scoring_profile']!r}; known: {', '.join(PRESETS)}"))
    try:
        profile = ScoringProfile.from_dict(phase["profile_snapshot"])
    except (KeyError, TypeError, ValueError) as exc:
        add(BundleProblem("profile", f"{at}.profile_snapshot", f"not a scoring profile: {exc}"))
        profile = None
    if profile is not None:
        for metric in phase["shown_metrics"]:
            if metric not in profile.metrics:
                add(BundleProblem("profile", f"{at}.shown_metrics", f"{metric} is not computed by the profile"))
    closes = phase["closes_after_s"]
    if closes is not None and closes <= phase["opens_after_s"]:
        add(BundleProblem("dates", f"{at}.closes_after_s", "the phase must close after it opens"))
    names = [d["name"] for d in phase["datasets"]]
    stems: dict[str, str] = {}
    thresholds = phase["profile_snapshot"]["identity_thresholds"]
    for j, dataset in enumerate(phase["datasets"]):
        where = f"{at}.datasets[{j}]"
        if names.count(dataset["name"]) > 1:
            add(BundleProblem("duplicate", f"{where}.name", f"dataset {dataset['name']!r} appears twice"))
        if thresholds.get(dataset["name"]) != dataset["identity_threshold"]:
            add(BundleProblem("threshold", f"{where}.identity_threshold",
                              f"{dataset['identity_threshold']} disagrees with the profile snapshot's"
                              f" {thresholds.get(dataset['name'])} for {dataset['name']}"))
        for k, image in enumerate(dataset["images"]):
            # The phase's landmarks are keyed by stem, as in eval.py's CSV: unique across its datasets.
            if image["stem"] in stems:
                add(BundleProblem("duplicate", f"{where}.images[{k}].stem",
                                  f"{image['stem']!r} is also in {stems[image['stem']]}"))
            stems[image["stem"]] = dataset["name"]
            if image["file"] != f"inputs/{image['sha256']}.png":
                add(BundleProblem("checksum", f"{where}.images[{k}].file", "must be inputs/<its sha256>.png"))
    for k, baseline in enumerate(phase["baselines"]):
        where = f"{at}.baselines[{k}]"
        if baseline["archive"] != f"baselines/{baseline['sha256']}.zip":
            add(BundleProblem("checksum", f"{where}.archive", "must be baselines/<its sha256>.zip"))
        if baseline["size"] > phase["limits"]["max_archive_bytes"]:
            add(BundleProblem("too_large", f"{where}.size", "more than the phase's max_archive_bytes"))


def _file_problems(manifest: dict[str, Any], archive: SafeZip) -> list[BundleProblem]:
    """Every named file is in the zip with its checksum (and, for inputs, its PNG size); nothing else is."""
    image_limits = input_archive_limits()
    wanted: dict[str, tuple[str, dict[str, Any]]] = {}
    for i, phase in enumerate(_items(manifest, "phases")):
        for j, dataset in enumerate(_items(phase, "datasets")):
            for k, image in enumerate(_items(dataset, "images")):
                if isinstance(image.get("file"), str):
                    wanted.setdefault(image["file"], (f"$.phases[{i}].datasets[{j}].images[{k}]", image))
        for k, baseline in enumerate(_items(phase, "baselines")):
            if isinstance(baseline.get("archive"), str):
                wanted.setdefault(baseline["archive"], (f"$.phases[{i}].baselines[{k}]", baseline))
    problems: list[BundleProblem] = []
    present = set(archive.names())
    for member, (where, entry) in wanted.items():
        with contextlib.suppress(*_MALFORMED):  # the schema's problems say where
            problems += _member_problems(archive, member, where, entry, member in present, image_limits)
    for member in sorted(present - set(wanted) - {MANIFEST}):
        problems.append(BundleProblem("extra", member, "is not named by the manifest"))
    return problems


def _member_problems(archive: SafeZip, member: str, where: str, entry: dict[str, Any], present: bool,
                     image_limits: Any) -> list[BundleProblem]:
    is_image = "stem" in entry
    if not present:
        if any(p.path == member for p in archive.problems):
            return []  # refused by the archive rules, listed already
        return [BundleProblem("missing", f"{where}.{'file' if is_image else 'archive'}",
                              f"{member} is not in the bundle")]
    size = archive.size(member)
    if is_image and size > image_limits.max_image_bytes:
        return [BundleProblem("too_large", member,
                              f"{size} bytes; an input image may have at most {image_limits.max_image_bytes}")]
    if not is_image and size != entry["size"]:
        return [BundleProblem("checksum", f"{where}.size", f"{member} has {size} bytes")]
    digest, head = hashlib.sha256(), b""
    try:
        for block in archive.stream(member):
            if len(head) < 24:
                head += block[:24]
            digest.update(block)
    except ArchiveMemberError as exc:
        return [BundleProblem(exc.problem.code, member, exc.problem.message)]
    if digest.hexdigest() != entry["sha256"]:
        return [BundleProblem("checksum", member, "its content does not match its sha256")]
    return _png_problems(member, head, entry, image_limits.max_pixels) if is_image else []


def _png_problems(member: str, head: bytes, image: dict[str, Any], max_pixels: int) -> list[BundleProblem]:
    size = declared_size(head)
    if size is None:
        return [BundleProblem("not_png", member, "is not a PNG image")]
    width, height = size
    if (width, height) != (image["width"], image["height"]):
        return [BundleProblem("wrong_size", member, f"is {width}x{height}, the manifest says"
                                                    f" {image['width']}x{image['height']}")]
    if width * height > max_pixels:
        return [BundleProblem("too_large", member, f"has more than {max_pixels} pixels")]
    return []


def phase_dates(phase: dict[str, Any], start: datetime) -> tuple[datetime, datetime | None]:
    closes = phase["closes_after_s"]
    return (start + timedelta(seconds=phase["opens_after_s"]),
            None if closes is None else start + timedelta(seconds=closes))
