from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from competitions.models import Phase
from leaderboard.charts import dataset_chart_options, leaderboard_charts
from leaderboard.selectors import LOWER_IS_BETTER, METRIC_LABELS, phase_leaderboard


def _phase(slug, phase):
    return get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)


def leaderboard(request, slug, phase):
    board = phase_leaderboard(_phase(slug, phase), request.user)
    columns = [{"key": m, "label": METRIC_LABELS.get(m, m), "lower": m in LOWER_IS_BETTER} for m in board.metrics]
    charts = board.memo("charts", lambda: leaderboard_charts(board))  # None unless the viewer may see the scores
    return render(request, "leaderboard.html", {
        "board": board, "phase": board.phase, "challenge": board.phase.challenge, "columns": columns,
        "chart_data": charts, "dataset_chart_options": dataset_chart_options(board) if charts else [],
    })


def leaderboard_json(request, slug, phase):
    # The body is encoded once per board version (as JsonResponse would encode it).
    body = phase_leaderboard(_phase(slug, phase), request.user).json_bytes()
    return HttpResponse(body, content_type="application/json")
