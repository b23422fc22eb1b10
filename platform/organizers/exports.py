"""Downloads for organizers: the leaderboard as CSV, eval.py's CSV pair per scored submission, and a
streamed zip of every submitted archive. Reads only; nothing here changes the database."""

from __future__ import annotations

import io
import logging
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from django.core.files.storage import default_storage

from competitions.models import Phase
from leaderboard.selectors import METRIC_LABELS, Leaderboard
from organizers import selectors
from scoring import csv_cells
from scoring.report_csv import eval_csv_names, write_images_csv, write_total_csv

logger = logging.getLogger(__name__)
CHUNK = 1 << 20


def safe_name(text: str) -> str:
    """A team name as a file name: letters, digits, ``.``, ``_`` and ``-``; the rest becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "team"


def leaderboard_csv_header(board: Leaderboard) -> list[str]:
    return ["rank", "team", "submission", "submitted_at", "total",
            *(METRIC_LABELS.get(m, m) for m in board.metrics),
            "id_similarity", "failed_images", "id_valid", "official_weights", "baseline"]


def leaderboard_csv(board: Leaderboard) -> str:
    """The leaderboard as the viewer may see it: the header alone when the scores are not visible to them."""
    out = io.StringIO()
    writer = csv_cells.writer(out)
    writer.writerow(leaderboard_csv_header(board))
    if board.visible:
        for row in board.rows:
            writer.writerow([
                row.rank if row.rank is not None else "", row.team, row.submission_id,
                row.submitted_at.isoformat(), row.total, *(row.metrics.get(m, "") for m in board.metrics),
                row.id_similarity, row.failed_images, int(row.valid), int(row.official_weights), int(row.baseline),
            ])
    return out.getvalue()


def results_zip(phase: Phase, target: IO[bytes]) -> int:
    """Write into ``target`` eval.py's ``<team>--<id>_total.csv`` and ``<team>--<id>.csv`` for every scored
    submission of the phase; returns how many submissions. One submission's rows are in memory at a time."""
    count = 0
    with tempfile.TemporaryDirectory(prefix="fr-export-") as scratch, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for result in selectors.scored_results(phase).iterator(chunk_size=50):
            report = selectors.score_report_of(result, phase)
            stem = f"{safe_name(result.submission.team.name)}--{result.submission_id}"
            total_name, images_name = eval_csv_names(stem)
            for name, writer in ((total_name, write_total_csv), (images_name, write_images_csv)):
                path = Path(scratch) / name
                writer(path, report)
                archive.write(path, name)
                path.unlink()
            count += 1
    return count


class _Pipe:
    """A write-only, unseekable file for zipfile: what is written is taken out by ``take()``."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def stream_archives(phase: Phase) -> Iterator[bytes]:
    """A zip of every submission's archive (``<team>--<id>.zip``) and a ``submissions.csv`` index, produced as
    it is sent: each archive is read from storage a chunk at a time, nothing is held whole in memory."""
    submissions = selectors.phase_archives(phase)
    pipe = _Pipe()
    index = io.StringIO()
    writer = csv_cells.writer(index)
    writer.writerow(["file", "submission", "team", "state", "created_at", "size", "sha256", "description", "note"])
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED, allowZip64=True) as bundle:  # type: ignore[arg-type]
        for submission in submissions:
            name = f"{safe_name(submission.team.name)}--{submission.pk}.zip"
            note = ""
            info = zipfile.ZipInfo(name, date_time=submission.created_at.timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            try:
                source = default_storage.open(submission.archive.name, "rb")
            except Exception as exc:  # a missing file must not end the download of the others
                logger.warning("archive of submission %s unreadable: %s", submission.pk, exc)
                name, note = "", f"not in storage: {type(exc).__name__}"
            else:
                with source, bundle.open(info, "w", force_zip64=True) as member:
                    while block := source.read(CHUNK):
                        member.write(block)
                        yield pipe.take()
            writer.writerow([name, submission.pk, submission.team.name, submission.state,
                             submission.created_at.isoformat(), submission.archive_size, submission.archive_sha256,
                             submission.description, note])
            yield pipe.take()
        bundle.writestr("submissions.csv", index.getvalue())
    yield pipe.take()


PARTICIPANT_COLUMNS = ["username", "full_name", "affiliation", "email", "status", "team", "registered_at",
                       "decided_at", "terms_version", "terms_sha256", "terms_accepted_at"]


def participants_csv(challenge) -> str:
    """Every registration of the challenge with the person's name, affiliation and team (challenge reports
    list each member's affiliation); cells through ``scoring.csv_cells`` like every CSV of the site."""
    from competitions.selectors import registrations
    from teams.models import Membership

    teams = dict(Membership.objects.filter(challenge=challenge).values_list("user_id", "team__name"))
    out = io.StringIO()
    writer = csv_cells.writer(out)
    writer.writerow(PARTICIPANT_COLUMNS)
    for registration in registrations(challenge).order_by("user__username"):
        user = registration.user
        profile = getattr(user, "profile", None)
        writer.writerow([
            user.username, profile.full_name if profile else "", profile.affiliation if profile else "", user.email,
            registration.status, teams.get(user.pk, ""), registration.created_at.isoformat(),
            registration.decided_at.isoformat() if registration.decided_at else "", registration.terms_version,
            registration.terms_sha256,
            registration.terms_accepted_at.isoformat() if registration.terms_accepted_at else "",
        ])
    return out.getvalue()
