"""The leaderboard page (a page of ``ROWS_PER_PAGE`` teams), its charts' data and its JSON export
(``leaderboard.http``: gzip and entity tags; its responses stay importable from here for the API).

Everything a public board shows is built once per board version and page (``Leaderboard.memo``):
a request then costs the phase lookup, the version lookup and, for a signed-in reader, their team.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from competitions.models import Phase
from competitions.permissions import is_phase_organizer
from leaderboard.charts import dataset_chart_options, leaderboard_charts, stability_charts
from leaderboard.http import board_json_response, stability_json_response
from leaderboard.phase_lookup import board_phase
from leaderboard.selectors import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    Leaderboard,
    StabilityView,
    phase_leaderboard,
    rank_stability_view,
)
from leaderboard.versions import schedule_rank_stability
from scoring.rank_stability import intervals_csv


def _phase(slug: str, phase: str, viewer_id: int | None = None) -> Phase:
    found = board_phase(challenge_slug=slug, phase_slug=phase, viewer_id=viewer_id)
    if found is None:
        raise Http404("No such phase.")
    return found


def _page_number(request: HttpRequest) -> int:
    try:
        return int(request.GET.get("page", "1"))
    except ValueError:
        return 1


def _page_links(page: Leaderboard) -> list[int | None]:
    """Page numbers to link: the first, the last and three either side of this one (None: a gap)."""
    wanted = {1, page.page_count, *range(page.page_number - 3, page.page_number + 4)}
    links: list[int | None] = []
    for number in sorted(n for n in wanted if 1 <= n <= page.page_count):
        if links and links[-1] is not None and number > links[-1] + 1:
            links.append(None)
        links.append(number)
    return links


def page_html(page: Leaderboard) -> str:
    """The tables, page links and chart slots of one page, rendered once per board version and page."""
    def render_page() -> str:
        columns = [{"key": m, "label": METRIC_LABELS.get(m, m), "lower": m in LOWER_IS_BETTER} for m in page.metrics]
        return render_to_string("leaderboard_board.html", {
            "board": page, "phase": page.phase, "challenge": page.phase.challenge, "columns": columns,
            "first_row": page.first_row, "last_row": page.first_row + len(page.rows) - 1,
            "page_links": _page_links(page), "dataset_chart_options": dataset_chart_options(page),
        })

    return mark_safe(page.memo("html", render_page))  # noqa: S308 - our own template's output


def _same_for_every_visitor(request: HttpRequest) -> bool:
    """A visitor without a session or pending messages gets the same page as any other such visitor."""
    cookies = {"messages", settings.SESSION_COOKIE_NAME} & request.COOKIES.keys()
    return not request.user.is_authenticated and not cookies


def leaderboard(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    signed_in = request.user.is_authenticated
    board = phase_leaderboard(_phase(slug, phase, request.user.pk if signed_in else None), request.user)
    context = {"board": board, "phase": board.phase, "challenge": board.phase.challenge}
    if not board.visible:
        return render(request, "leaderboard.html", context)
    page = board.page(_page_number(request))
    context["board_html"] = page_html(page)
    if board.cached and _same_for_every_visitor(request):
        # The whole page, once per board version, page and shell text (the phase's and challenge's names).
        shell = (board.phase.name, board.phase.challenge.title, board.phase.challenge.slug, board.phase.slug)
        body = page.memo(f"anonymous:{shell}", lambda: render(request, "leaderboard.html", context).content)
        return HttpResponse(body)
    team = board.phase.viewer_team if signed_in else None  # read with the phase
    if team is not None:
        context["your_team"] = team
        context["your_place"] = board.page_of_team(team.pk)
    return render(request, "leaderboard.html", context)


def leaderboard_charts_json(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    """The figures of one page of the board (the same teams as its tables), for static/charts.js."""
    board = phase_leaderboard(_phase(slug, phase), request.user)
    page = board.page(_page_number(request)) if board.visible else board
    body = page.memo("charts_json", lambda: json.dumps(leaderboard_charts(page) or {"figures": {}}).encode())
    return HttpResponse(body, content_type="application/json")


def leaderboard_json(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    return board_json_response(request, phase_leaderboard(_phase(slug, phase), request.user))


# --------------------------------------------------------------------------- rank stability


def _stability(request: HttpRequest, slug: str, phase: str) -> StabilityView:
    view = rank_stability_view(_phase(slug, phase), request.user)
    if view.board.visible and view.analysis is None and view.has_ranked_teams:
        schedule_rank_stability([view.board.phase.pk])  # debounced: at most one task per phase on its way
    return view


def rank_stability(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    """The "Rank stability" tab: blob plot, significance map and intervals table of the current board."""
    view = _stability(request, slug, phase)
    data = view.data
    context = {"board": view.board, "phase": view.board.phase, "challenge": view.board.phase.challenge,
               "view": view, "data": data, "charts": stability_charts(data),
               "organizer": is_phase_organizer(request.user, view.board.phase)}
    if data:
        beats = {t["team"]: [] for t in data["teams"]}
        for pair in data["pairs"]:
            if pair["significant"]:
                beats[pair["better"]].append(pair["worse"])
        context["rows"] = [{**t, "beats": beats[t["team"]], "win_percent": 100 * t["win_share"]}
                           for t in data["teams"]]
    return render(request, "leaderboard_stability.html", context)


def rank_stability_json(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    return stability_json_response(_stability(request, slug, phase))


def rank_stability_csv(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    """The intervals table; 404 while there is none the viewer may see for the current board."""
    view = _stability(request, slug, phase)
    if view.data is None:
        raise Http404("No rank-stability analysis of this board.")
    response = HttpResponse(intervals_csv(view.data["teams"]), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}-{phase}-rank-stability.csv"'
    return response
