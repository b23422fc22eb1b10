"""Why a submission write is refused: one code per reason, each with one HTTP status and one message.

Views show the message, the API answers ``{"error": message, "code": code}`` with the code's status (one
exception handler, ``submissions.api``), and the participant CLI prints the API's message. Quota exhaustion
is 429 (retry later); a closed phase, a disqualified team or a missing team are not.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Refusal(StrEnum):
    WRONG_CHALLENGE = "wrong_challenge"
    DISQUALIFIED = "disqualified"
    PHASE_CLOSED = "phase_closed"
    NO_TEAM = "no_team"
    NOT_A_MEMBER = "not_a_member"
    NOT_PARTICIPANT = "not_participant"
    NO_ARCHIVE = "no_archive"
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    TOO_LARGE_WHILE_RECEIVED = "too_large_while_received"
    ONE_TEAM_PER_PHASE = "one_team_per_phase"
    TOTAL_QUOTA = "total_quota"
    DAILY_QUOTA = "daily_quota"
    RUNNING_AT_ONCE = "running_at_once"
    DIRECT_UPLOADS_OFF = "direct_uploads_off"
    UPLOAD_NOT_YOURS = "upload_not_yours"
    BAD_PARTS = "bad_parts"
    STORAGE_REFUSED = "storage_refused"
    SIZE_MISMATCH = "size_mismatch"
    NOT_RERUNNABLE = "not_rerunnable"
    FACTSHEET_WRONG_PHASE = "factsheet_wrong_phase"
    FACTSHEET_NOT_MEMBER = "factsheet_not_member"
    CODE_URL_NOT_HTTPS = "code_url_not_https"
    FACTSHEET_TOO_LARGE = "factsheet_too_large"
    FACTSHEET_NOT_PDF = "factsheet_not_pdf"

    @property
    def status(self) -> int:
        return _SPEC[self][0]

    @property
    def template(self) -> str:
        return _SPEC[self][1]


_SPEC: dict[Refusal, tuple[int, str]] = {
    Refusal.WRONG_CHALLENGE: (400, "This team belongs to another challenge."),
    Refusal.DISQUALIFIED: (403, "This team has been disqualified from the challenge."),
    Refusal.PHASE_CLOSED: (409, "The phase {phase} is not open for submissions."),
    Refusal.NO_TEAM: (403, "You are not in a team for this challenge: join or create a team before submitting."),
    Refusal.NOT_A_MEMBER: (403, "You are no longer a member of the team {team}; nothing was submitted."),
    # Not registered, not approved, revoked, or the terms changed: competitions.permissions says which.
    Refusal.NOT_PARTICIPANT: (403, "You cannot submit to this challenge yet. {reason}"),
    Refusal.NO_ARCHIVE: (400, "Choose a zip archive to upload (the multipart field 'archive')."),
    Refusal.EMPTY: (400, "The uploaded file is empty."),
    Refusal.TOO_LARGE: (413, "The archive is {size_mb:.1f} MB; this phase accepts at most {limit_mb:.1f} MB."),
    Refusal.TOO_LARGE_WHILE_RECEIVED: (
        413, "The archive is larger than this phase accepts ({limit_mb:.1f} MB at most); nothing was stored."),
    # One team per phase is a rule, not an exhausted quota: waiting does not lift it, so it is no 429.
    Refusal.ONE_TEAM_PER_PHASE: (
        400, "You have already submitted to this phase for the team {other_team}; a person submits to a phase for "
             "one team only, so that nobody holds two rows of its board."),
    Refusal.TOTAL_QUOTA: (429, "This phase allows {total} submissions in total and your team has used them all."),
    Refusal.DAILY_QUOTA: (
        429, "This phase allows {per_day} submissions a day; your team has used them all today. "
             "The count resets at {resets_at:%Y-%m-%d %H:%M} UTC."),
    Refusal.RUNNING_AT_ONCE: (
        429, "Your team already has {running} submission(s) being processed (at most {max_running} at once). "
             "Wait for one to finish."),
    Refusal.DIRECT_UPLOADS_OFF: (
        400, "Direct uploads need S3 storage; send the archive to the submissions endpoint instead."),
    Refusal.UPLOAD_NOT_YOURS: (403, "This upload was started by someone else."),
    Refusal.BAD_PARTS: (400, "parts must be a list of {{number, etag}}"),
    Refusal.STORAGE_REFUSED: (400, "The storage refused to assemble the archive: {detail}"),
    Refusal.SIZE_MISMATCH: (400, "The stored archive has {stored} bytes; {announced} were announced."),
    Refusal.NOT_RERUNNABLE: (409, "Submission {pk} cannot be re-run while it is {state}."),
    Refusal.FACTSHEET_WRONG_PHASE: (400, "Factsheets and code links belong to test-phase submissions."),
    Refusal.FACTSHEET_NOT_MEMBER: (403, "Only the team's members can attach its factsheet."),
    Refusal.CODE_URL_NOT_HTTPS: (400, "The code link must be an https:// URL."),
    Refusal.FACTSHEET_TOO_LARGE: (413, "The factsheet is larger than 20 MB."),
    Refusal.FACTSHEET_NOT_PDF: (400, "The factsheet must be a PDF file."),
}


class SubmissionRefused(Exception):
    """A refused submission write; ``str(exc)`` is the message shown to the participant as it is."""

    def __init__(self, code: Refusal, **params: Any) -> None:
        self.code = code
        self.params = params
        self.message = code.template.format(**params)
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return self.code.status
