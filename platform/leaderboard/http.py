"""The board's JSON over HTTP: one body per board version, gzip-compressed and tagged once (``Leaderboard.memo``),
answered 304 Not Modified when the client has it."""

from __future__ import annotations

import gzip
import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_vary_headers

from leaderboard.selectors import Leaderboard, StabilityView


def json_gzip(board: Leaderboard) -> bytes:
    """``board.json_bytes()`` compressed, once per board."""
    return board.memo("json_gzip", lambda: gzip.compress(board.json_bytes(), compresslevel=6, mtime=0))


def json_etag(board: Leaderboard) -> str:
    """A (weak: plain or gzip) entity tag of ``board.json_bytes()``, the same in every process that built it."""
    return board.memo("json_etag", lambda: 'W/"' + hashlib.sha256(board.json_bytes()).hexdigest()[:32] + '"')


def board_json_response(request: HttpRequest, board: Leaderboard) -> HttpResponse:
    """The whole board as JSON (every row). A cached board's answer is gzip-compressed when the client accepts
    it and is 304 Not Modified when the client has this version (both computed once per board); a board
    built for this request alone (an organizer's preview, the cache turned off) is sent as it is."""
    if not board.cached:
        return HttpResponse(board.json_bytes(), content_type="application/json")
    etag = json_etag(board)
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponse = HttpResponseNotModified()
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(json_gzip(board), content_type="application/json")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(board.json_bytes(), content_type="application/json")
    response["ETag"] = etag
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


def stability_json_response(view: StabilityView) -> HttpResponse:
    return HttpResponse(json.dumps(view.to_json(), cls=DjangoJSONEncoder), content_type="application/json")
