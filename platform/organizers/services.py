"""Writes of the organizer pages: challenges and phases, input sets, the queue, verification, e-mail.

Submission states change only through submissions.transitions (via submissions.services).
"""

from __future__ import annotations

import logging
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction

from competitions import services as competition_services
from competitions.data_services import request_phase_data
from competitions.models import Challenge, InputDataset, InputImage, Phase
from organizers import bundles, selectors
from scoring.inputs import InputSetError, Landmarks, check_landmarks_cover, read_landmarks, scan_inputs, write_landmarks
from scoring.profile import get_profile
from submissions import transitions
from submissions.models import Submission
from submissions.services import enqueue_scoring, rerun_submission, sha256_of_upload
from teams.models import Team, team_name_key
from teams.services import TeamError, clean_team_name

logger = logging.getLogger(__name__)
State = Submission.State


class OrganizerError(Exception):
    """Refused; the message is shown to the organizer as it is."""


# --------------------------------------------------------------------------- challenges and phases


def create_challenge(*, user, slug: str, title: str, description: str = "", max_team_size: int = 5,
                     registration_mode: str = Challenge.RegistrationMode.OPEN) -> Challenge:
    """A new challenge, organized by the user who creates it."""
    try:
        with transaction.atomic():
            return competition_services.create_challenge(
                slug=slug, title=title, description=description, max_team_size=max_team_size, organizers=[user],
                registration_mode=registration_mode)
    except IntegrityError:
        raise OrganizerError(f"A challenge with the slug {slug!r} exists already.") from None


def update_challenge(challenge: Challenge, *, title: str, description: str, max_team_size: int,
                     registration_mode: str | None = None, **_: Any) -> Challenge:
    challenge.title, challenge.description, challenge.max_team_size = title, description, max_team_size
    challenge.registration_mode = registration_mode or challenge.registration_mode
    challenge.save(update_fields=["title", "description", "max_team_size", "registration_mode"])
    return challenge


def create_phase(*, challenge: Challenge, slug: str, name: str, scoring_profile: str, **fields: Any) -> Phase:
    try:
        with transaction.atomic():
            return competition_services.create_phase(challenge=challenge, slug=slug, name=name,
                                                     scoring_profile=scoring_profile, **fields)
    except IntegrityError:
        raise OrganizerError(f"This challenge has a phase with the slug {slug!r} already.") from None


PHASE_EDITABLE = ("name", "kind", "order", "opens_at", "closes_at", "max_per_day", "max_total", "max_running",
                  "max_archive_bytes", "shown_metrics", "visibility", "selection")


def update_phase(phase: Phase, *, scoring_profile: str, **fields: Any) -> Phase:
    """Change a phase's settings. A new scoring profile is snapshotted again, keeping the identity thresholds
    the input set was loaded with; results already stored keep the profile they were scored with."""
    for name in PHASE_EDITABLE:
        if name in fields:
            setattr(phase, name, fields[name])
    changed = list(PHASE_EDITABLE)
    if scoring_profile != phase.scoring_profile:
        profile = get_profile(scoring_profile).to_dict()
        thresholds = phase.profile_snapshot.get("identity_thresholds")
        if thresholds:
            profile["identity_thresholds"] = {**profile["identity_thresholds"], **thresholds}
        phase.scoring_profile, phase.profile_snapshot = scoring_profile, profile
        changed += ["scoring_profile", "profile_snapshot"]
    phase.save(update_fields=changed)
    return phase


def set_published(phase: Phase, published: bool, *, allow_unverified: bool = False) -> Phase:
    """Publish (or withdraw) the scores of a hidden phase. A test phase is published only once every team's
    final entry is verified, unless the organizer says to go ahead anyway."""
    if phase.visibility != Phase.Visibility.HIDDEN:
        raise OrganizerError("Only a phase whose scores are hidden until published can be published or withdrawn.")
    if published and phase.kind == Phase.Kind.TEST and not allow_unverified:
        waiting = selectors.unverified_count(phase)
        if waiting:
            raise OrganizerError(
                f"{waiting} team entr{'y is' if waiting == 1 else 'ies are'} not verified yet. Verify them, or tick"
                " 'publish with unverified entries'.")
    Phase.objects.filter(pk=phase.pk).update(published=published)
    phase.published = published
    return phase


# --------------------------------------------------------------------------- input sets


@dataclass(frozen=True)
class InputArchiveLimits:
    max_archive_bytes: int = 8 * 1024**3
    max_members: int = 20_000
    max_image_bytes: int = 64 * 1024**2
    max_total_bytes: int = 16 * 1024**3
    max_pixels: int = 4096 * 4096
    max_csv_bytes: int = 64 * 1024**2


def input_archive_limits() -> InputArchiveLimits:
    overrides = getattr(settings, "FR_INPUT_SET_LIMITS", None) or {}
    return InputArchiveLimits(**overrides)


class NoFaceFound(InputSetError):
    """RetinaFace found no face in some inputs; nothing was stored. ``missing``: their ``<Dataset>/<stem>.png``."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            f"No face was found in {len(missing)} input(s); nothing was stored. Upload a landmarks CSV with rows for"
            " them (the other inputs' landmarks are detected again)."
        )


_MEMBER = re.compile(
    r"^(?P<dataset>[A-Za-z0-9][A-Za-z0-9_.+-]{0,99})/(?P<stem>[A-Za-z0-9][A-Za-z0-9_.+-]{0,199})\.png$")
_JUNK_PARTS = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_junk(name: str) -> bool:
    return any(part in _JUNK_PARTS or part.startswith("._") for part in name.split("/"))


def _common_folder(names: Iterable[str]) -> str:
    """``inputs/`` when every member is ``inputs/<Dataset>/<stem>.png`` (a zipped folder), else ``""``."""
    parts = [name.split("/") for name in names]
    if parts and all(len(p) == 3 for p in parts) and len({p[0] for p in parts}) == 1:
        return parts[0][0] + "/"
    return ""


def extract_input_archive(source: IO[bytes], dest: Path, limits: InputArchiveLimits | None = None) -> int:
    """Extract ``<Dataset>/<stem>.png`` members under ``dest`` with names built from the checked parts.

    Every name, size and flag is checked from the central directory before a byte is extracted; symlinks,
    encrypted members, other compressions, odd names and duplicates are refused; each member's output is
    capped at its declared size. Raises InputSetError listing the problems."""
    limits = limits or input_archive_limits()
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InputSetError("The input set is not a readable zip archive.") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise InputSetError(f"The archive has {len(infos)} members; at most {limits.max_members} are accepted.")
        files = [i for i in infos if not i.is_dir() and not _is_junk(i.filename)]
        prefix = _common_folder(i.filename for i in files)
        problems: list[str] = []
        wanted: list[tuple[zipfile.ZipInfo, str, str]] = []
        seen: set[str] = set()
        total = 0
        for info in files:
            name = info.filename
            relative = name[len(prefix):]
            match = _MEMBER.match(relative)
            if stat.S_ISLNK(info.external_attr >> 16):
                problems.append(f"{name}: a symbolic link")
            elif info.flag_bits & 0x1:
                problems.append(f"{name}: encrypted")
            elif match is None:
                problems.append(f"{name}: not <Dataset>/<stem>.png (letters, digits, . _ + - only)")
            elif info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                problems.append(f"{name}: compressed with an unsupported method")
            elif info.file_size > limits.max_image_bytes:
                problems.append(f"{name}: {info.file_size} bytes, more than {limits.max_image_bytes}")
            elif relative.casefold() in seen:
                problems.append(f"{name}: appears twice")
            else:
                seen.add(relative.casefold())
                total += info.file_size
                wanted.append((info, match["dataset"], match["stem"]))
        if total > limits.max_total_bytes:
            problems.append(f"the images add up to {total} bytes, more than {limits.max_total_bytes}")
        if not wanted and not problems:
            problems.append("no <Dataset>/<stem>.png image in the archive")
        if problems:
            raise InputSetError(_problem_list("The input archive was refused", problems))
        for info, dataset, stem in wanted:
            target = dest / dataset / f"{stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as member, open(target, "xb") as out:
                    head = member.read(len(_PNG_SIGNATURE))
                    if head != _PNG_SIGNATURE:
                        problems.append(f"{info.filename}: not a PNG file")
                        continue
                    out.write(head)
                    left = info.file_size - len(head)
                    while left > 0 and (block := member.read(min(1 << 20, left))):
                        out.write(block)
                        left -= len(block)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                problems.append(f"{info.filename}: unreadable ({type(exc).__name__})")
        if problems:
            raise InputSetError(_problem_list("The input archive was refused", problems))
    return len(wanted)


def _problem_list(title: str, problems: list[str], shown: int = 20) -> str:
    more = f"\n... and {len(problems) - shown} more" if len(problems) > shown else ""
    return f"{title}:\n" + "\n".join(problems[:shown]) + more


def _save_upload(upload: File, target: Path, max_bytes: int, what: str) -> Path:
    size = upload.size or 0
    if size > max_bytes:
        raise InputSetError(f"The {what} is {size} bytes; at most {max_bytes} are accepted.")
    with open(target, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    upload.seek(0)
    return target


@dataclass(frozen=True)
class InputSetLoaded:
    images: int
    from_csv: int
    detected: int


def load_input_set_upload(
    phase: Phase, archive: File, landmarks_csv: File | None = None, thresholds: dict[str, float] | None = None, *,
    weights_dir: str | Path | None = None, device: str | None = None,
) -> InputSetLoaded:
    """Replace the phase's input set with an uploaded zip (and landmarks CSV).

    Inputs the CSV does not list (all of them without a CSV) get their landmarks from RetinaFace. When no face
    is found in some inputs, NoFaceFound lists them and nothing is stored: the set is saved only once every
    input has its landmarks. Any other problem raises InputSetError, also before anything is stored.
    """
    limits = input_archive_limits()
    scratch_root = Path(settings.FR_SCRATCH_DIR)
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"inputs-{phase.pk}-", dir=scratch_root) as scratch:
        root = Path(scratch)
        try:
            return _load_from(phase, root, archive, landmarks_csv, thresholds or {}, limits,
                              weights_dir or settings.FR_WEIGHTS_DIR, device or settings.FR_SCORING_DEVICE)
        except NoFaceFound:
            raise
        except InputSetError as exc:  # the messages name our scratch paths: name the uploads instead
            message = str(exc).replace(str(root / "landmarks-upload.csv"), "the landmarks CSV")
            raise InputSetError(message.replace(str(root / "inputs"), "the archive")) from None


def _load_from(phase: Phase, root: Path, archive: File, landmarks_csv: File | None, thresholds: dict[str, float],
               limits: InputArchiveLimits, weights_dir: str | Path, device: str) -> InputSetLoaded:
    if (archive.size or 0) > limits.max_archive_bytes:
        raise InputSetError(f"The archive is {archive.size} bytes; at most {limits.max_archive_bytes} are accepted.")
    inputs = root / "inputs"
    inputs.mkdir()
    archive.seek(0)
    extract_input_archive(archive, inputs, limits)
    images = scan_inputs(inputs)
    too_big = [i.relpath for i in images if i.width * i.height > limits.max_pixels]
    if too_big:
        raise InputSetError(_problem_list(f"Images over {limits.max_pixels} pixels", too_big))
    landmarks: dict[str, Landmarks] = {}
    if landmarks_csv is not None:
        landmarks = read_landmarks(_save_upload(landmarks_csv, root / "landmarks-upload.csv", limits.max_csv_bytes,
                                                "landmarks CSV"))
    from_csv = sum(1 for i in images if i.stem in landmarks)
    missing = [i for i in images if i.stem not in landmarks]
    if len(missing) > settings.FR_WEB_DETECT_MAX:
        # RetinaFace takes ~0.45 s an image on a CPU: more would outlast the web request (and be cut off).
        raise InputSetError(
            f"{len(missing)} input(s) have no landmarks in the CSV; this form locates at most"
            f" {settings.FR_WEB_DETECT_MAX} faces. Run `python -m scoring landmarks <inputs folder> landmarks.csv"
            " --weights <weights folder>` (on a GPU if you have one) and upload its CSV with the archive.")
    if missing:
        from scoring.landmarks import detect_landmarks
        from scoring.weights import WeightsError

        try:
            detected, no_face = detect_landmarks(missing, weights_dir, device)
        except WeightsError as exc:
            raise InputSetError(f"{len(missing)} input(s) have no landmarks in a CSV and the face detector cannot"
                                f" run: {exc}") from None
        if no_face:
            by_stem = {i.stem: i.relpath for i in missing}
            raise NoFaceFound([by_stem[stem] for stem in no_face])
        landmarks.update(detected)
    check_landmarks_cover(images, landmarks)
    merged = root / "landmarks.csv"
    write_landmarks(merged, [landmarks[i.stem] for i in images])
    count = competition_services.load_input_set(phase, inputs, merged, thresholds=thresholds)
    return InputSetLoaded(images=count, from_csv=from_csv, detected=len(missing))


# --------------------------------------------------------------------------- the queue


def rerun_phase(phase: Phase, by_user, reason: str = "") -> int:
    """Score every scored or failed submission of the phase again (after new weights, say); returns how many
    were re-queued. Each goes back through the state machine on its own: one that moved meanwhile is skipped."""
    count = 0
    for submission in Submission.objects.filter(phase=phase, state__in=selectors.RERUN_STATES).order_by("id"):
        count += rerun_submission(submission, by_user, reason)
    return count


def set_disqualified(team: Team, disqualified: bool) -> Team:
    from leaderboard.versions import board_changed

    with transaction.atomic():
        Team.objects.filter(pk=team.pk).update(disqualified=disqualified)
        board_changed(challenge_id=team.challenge_id)
    team.disqualified = disqualified
    return team


def set_verified(submission: Submission, verified: bool) -> Submission:
    Submission.objects.filter(pk=submission.pk).update(verified=verified)
    submission.verified = verified
    return submission


def add_baseline(*, phase: Phase, name: str, upload: File, by_user, description: str = "",
                 enqueue: bool = True) -> Submission:
    """A named baseline row ("CodeFormer baseline"): a baseline team owned by the organizer (no membership, so
    it does not take the organizer's one team per challenge) and a submission of the uploaded archive.

    Phase dates and quotas do not apply to organizers; the archive size limit does."""
    try:
        name = clean_team_name(name)
    except TeamError as exc:
        raise OrganizerError(f"A baseline's name is its team's name: {exc}") from None
    size = upload.size or 0
    if size == 0:
        raise OrganizerError("The uploaded file is empty.")
    if size > phase.max_archive_bytes:
        raise OrganizerError(f"The archive is {size} bytes; this phase accepts at most {phase.max_archive_bytes}.")
    sha256 = sha256_of_upload(upload)
    try:
        with transaction.atomic():
            team, _ = Team.objects.get_or_create(challenge=phase.challenge, name_key=team_name_key(name),
                                                 defaults={"name": name, "created_by": by_user, "is_baseline": True})
            if not team.is_baseline:
                raise OrganizerError(f"A participating team is called {team.name!r}; choose another name.")
            submission = Submission(phase=phase, team=team, submitted_by=by_user,
                                    description=(description or name)[:300], archive_size=size, archive_sha256=sha256)
            submission.archive.save(f"{phase.pk}-{team.pk}.zip", upload, save=False)
            try:
                submission.save()
                transitions.log(submission.pk, f"Baseline archive added by {by_user}: {size} bytes, sha256 {sha256}.")
            except BaseException:  # the row is rolled back: so is the archive it would have pointed to
                _remove_stored([submission.archive.name])
                raise
            if enqueue:
                transaction.on_commit(lambda: enqueue_scoring(submission.pk))
    except IntegrityError:
        raise OrganizerError(f"The team name {name!r} was taken meanwhile; try again.") from None
    return submission


# --------------------------------------------------------------------------- bundles and editions


@dataclass(frozen=True)
class BundleImported:
    challenge: Challenge
    phases: int
    images: int
    files_stored: int  # input files written to storage
    files_reused: int  # input files storage had already (same sha256)
    baselines: list[Submission]


_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,50}$")


def _slug_problems(slug: str) -> list[bundles.BundleProblem]:
    if not _SLUG.match(slug):
        return [bundles.BundleProblem("slug", "--slug", f"{slug!r} is not a slug (letters, digits, - and _)")]
    if Challenge.objects.filter(slug=slug).exists():
        return [bundles.BundleProblem("slug", "--slug", f"a challenge with the slug {slug!r} exists already")]
    return []


def import_bundle(path: Path, *, slug: str, start: datetime, user, title: str = "",
                  profiles: dict[str, str] | None = None, enqueue: bool = True) -> BundleImported:
    """Create a challenge from a bundle, its first phase opening at ``start``; ``user`` organizes it.

    The whole bundle is checked first (organizers.bundles.read_bundle) and BundleInvalid lists every problem;
    then everything is written in one transaction, and files written to storage are removed again if anything
    fails. ``profiles``: phase slug (or ``*`` for all) -> the preset to score with instead of the bundle's.
    Baseline archives become baseline submissions, queued for scoring once the transaction commits."""
    profiles = dict(profiles or {})
    problems = _slug_problems(slug)
    try:
        bundle = bundles.read_bundle(path, profiles=profiles)
    except bundles.BundleInvalid as exc:
        raise bundles.BundleInvalid(problems + exc.problems) from None
    written: list[str] = []
    try:
        if problems:
            raise bundles.BundleInvalid(problems)
        with transaction.atomic():
            return _create_from_bundle(bundle, slug, start, user, title, profiles, enqueue, written)
    except IntegrityError:
        _remove_stored(written)
        taken = _slug_problems(slug)  # the slug was taken meanwhile: say so; anything else is a bug, raised
        if taken:
            raise bundles.BundleInvalid(taken) from None
        raise
    except BaseException:
        _remove_stored(written)
        raise
    finally:
        bundle.close()


def _remove_stored(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:  # keep the original error; an orphan file is harmless
            logger.warning("could not remove %s after a failed bundle import", name, exc_info=True)


def _create_from_bundle(bundle: bundles.Bundle, slug: str, start: datetime, user, title: str,
                        profiles: dict[str, str], enqueue: bool, written: list[str]) -> BundleImported:
    manifest = bundle.manifest
    about = manifest["challenge"]
    challenge = competition_services.create_challenge(
        slug=slug, title=title or about["title"], description=about["description"],
        max_team_size=about["max_team_size"], organizers=[user])
    stored: dict[str, str] = {}
    images = reused = 0
    baselines: list[Submission] = []
    scratch = Path(settings.FR_SCRATCH_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    for entry in manifest["phases"]:
        opens_at, closes_at = bundles.phase_dates(entry, start)
        name, snapshot = entry["scoring_profile"], entry["profile_snapshot"]
        chosen = profiles.get(entry["slug"]) or profiles.get("*")
        if chosen and chosen != name:
            name, snapshot = chosen, competition_services.retargeted_snapshot(chosen, snapshot["identity_thresholds"])
        metrics = {term["metric"] for term in snapshot["terms"]}
        phase = competition_services.create_phase(
            challenge=challenge, slug=entry["slug"], name=entry["name"], scoring_profile=name,
            profile_snapshot=snapshot, kind=entry["kind"], order=entry["order"], opens_at=opens_at,
            closes_at=closes_at, visibility=entry["visibility"], selection=entry["selection"],
            shown_metrics=[m for m in entry["shown_metrics"] if m in metrics], **entry["limits"])
        for item in entry["datasets"]:
            # The snapshot holds the thresholds scoring uses; the dataset rows show the same.
            dataset = InputDataset.objects.create(phase=phase, name=item["name"],
                                                  identity_threshold=snapshot["identity_thresholds"][item["name"]])
            rows = []
            for image in item["images"]:
                if image["sha256"] not in stored:
                    content = ContentFile(b"".join(bundle.stream(image["file"])))
                    stored[image["sha256"]], created = competition_services.store_input_file(image["sha256"], content)
                    if created:
                        written.append(stored[image["sha256"]])
                    else:
                        reused += 1
                rows.append(InputImage(dataset=dataset, stem=image["stem"], width=image["width"],
                                       height=image["height"], sha256=image["sha256"],
                                       file=stored[image["sha256"]], landmarks=image["landmarks"], box=image["box"]))
            InputImage.objects.bulk_create(rows)
            images += len(rows)
        if entry["datasets"]:
            request_phase_data(phase.pk)
        for item in entry["baselines"]:
            with tempfile.TemporaryFile(dir=scratch) as spool:
                for block in bundle.stream(item["archive"]):
                    spool.write(block)
                spool.seek(0)
                submission = add_baseline(phase=phase, name=item["name"], upload=File(spool, name="baseline.zip"),
                                          by_user=user, description=item["description"], enqueue=enqueue)
            written.append(submission.archive.name)
            baselines.append(submission)
    return BundleImported(challenge=challenge, phases=len(manifest["phases"]), images=images,
                          files_stored=len(stored) - reused, files_reused=reused, baselines=baselines)


def import_bundle_upload(upload: File, **options: Any) -> BundleImported:
    """import_bundle for a bundle uploaded through the organizer page (refused over the size limit unread)."""
    limit = bundles.bundle_limits().max_archive_bytes
    if (upload.size or 0) > limit:
        raise bundles.BundleInvalid([bundles.BundleProblem("too_large", "bundle",
                                                           f"{upload.size} bytes; at most {limit} are accepted")])
    scratch = Path(settings.FR_SCRATCH_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=".zip") as spool:
        for chunk in upload.chunks():
            spool.write(chunk)
        spool.flush()
        return import_bundle(Path(spool.name), **options)


def new_edition(challenge: Challenge, *, slug: str, start: datetime, user, title: str = "",
                profiles: dict[str, str] | None = None, enqueue: bool = True) -> BundleImported:
    """Copy a challenge into a new one (next year's, say) through its own bundle: the same pages, phases,
    limits, input sets and baselines, dates shifted to ``start``, the chosen profiles; no participants."""
    scratch = Path(settings.FR_SCRATCH_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=".zip") as spool:
        bundles.export_bundle(challenge, spool)
        spool.flush()
        return import_bundle(Path(spool.name), slug=slug, start=start, user=user, title=title, profiles=profiles,
                             enqueue=enqueue)


# --------------------------------------------------------------------------- e-mail


def email_phase_teams(phase: Phase, *, subject: str, body: str, by_user) -> int:
    """One message per recipient (addresses are not shown to each other); returns how many were sent."""
    recipients = list(selectors.phase_recipients(phase).values_list("email", flat=True))
    if not recipients:
        return 0
    reply_to = [by_user.email] if by_user.email else None
    prefix = f"[{phase.challenge.title}] "
    messages = [
        EmailMessage(subject=prefix + subject, body=body, to=[address], reply_to=reply_to)
        for address in recipients
    ]
    with get_connection() as connection:
        sent = connection.send_messages(messages) or 0
    logger.info("%s e-mailed %s recipient(s) of %s: %s", by_user, sent, phase, subject)
    return sent
