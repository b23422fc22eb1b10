"""The leaderboard endpoints of the JSON API (a router of frplatform.api). No token needed; a token or a session
shows what its user may see."""

from __future__ import annotations

from typing import Any

from accounts.api_auth import ErrorOut, token_user
from django.http import Http404
from ninja import Router, Schema

from leaderboard.selectors import board_phase, phase_leaderboard, rank_stability_view
from leaderboard.views import board_json_response, stability_json_response

router = Router(tags=["leaderboards"])


class RowOut(Schema):
    rank: int | None
    team: str
    submission: int
    submitted_at: str
    total: float | None
    failed_images: int | None
    id_valid: bool | None
    id_similarity: float | None
    metrics: dict[str, float | None]
    official_weights: bool | None
    baseline: bool


class DatasetRowOut(Schema):
    team: str
    submission: int
    image_count: int
    metrics: dict[str, float | None]
    id_similarity: float | None
    failed_images: int | None


class BoardOut(Schema):
    challenge: str
    phase: str
    visible: bool
    notice: str
    metrics: list[str]
    official_weights: bool
    rows: list[RowOut]
    datasets: dict[str, list[DatasetRowOut]]


class StabilityOut(Schema):
    challenge: str
    phase: str
    visible: bool
    notice: str
    current: bool
    board: int | str | None = None
    computed_at: str | None = None
    seconds: float | None = None
    analysis: dict[str, Any] | None = None
    status: str | None = None


def _phase(phase_id: int):
    phase = board_phase(phase_id=phase_id)
    if phase is None:
        raise Http404
    return phase


@router.get("/phases/{int:phase_id}/leaderboard", response={200: BoardOut, 404: ErrorOut},
            url_name="api-leaderboard",
            summary="A phase's leaderboard, as the caller may see it: every team. Sent gzip-compressed to a client "
                    "that accepts it, with an ETag: ask again with If-None-Match and an unchanged board answers "
                    "304 Not Modified.")
def leaderboard(request, phase_id: int):
    return board_json_response(request, phase_leaderboard(_phase(phase_id), token_user(request)))


@router.get("/phases/{int:phase_id}/rank-stability", response={200: StabilityOut, 404: ErrorOut},
            url_name="api-rank-stability",
            summary="The rank-stability analysis of the phase's current board, when there is one.")
def rank_stability(request, phase_id: int):
    return stability_json_response(rank_stability_view(_phase(phase_id), token_user(request)))
