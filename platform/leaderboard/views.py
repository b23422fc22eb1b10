from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render

from competitions.models import Phase
from leaderboard.selectors import LOWER_IS_BETTER, METRIC_LABELS, phase_leaderboard


def _phase(slug, phase):
    return get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)


def leaderboard(request, slug, phase):
    board = phase_leaderboard(_phase(slug, phase), request.user)
    columns = [{"key": m, "label": METRIC_LABELS.get(m, m), "lower": m in LOWER_IS_BETTER} for m in board.metrics]
    return render(request, "leaderboard.html", {
        "board": board, "phase": board.phase, "challenge": board.phase.challenge, "columns": columns,
    })


def leaderboard_json(request, slug, phase):
    return JsonResponse(phase_leaderboard(_phase(slug, phase), request.user).to_json())
