from django.shortcuts import get_object_or_404, render

from competitions import selectors
from competitions.data_views import data_context
from competitions.models import Challenge, Phase
from leaderboard.selectors import is_organizer
from submissions.selectors import counted_submission_id, phase_scores_visible_to_team, team_submissions
from submissions.services import quota_status
from submissions.uploads import direct_uploads_enabled
from teams.services import rules_context, team_of


def home(request):
    return render(request, "home.html", {"challenges": selectors.open_challenges()})


def challenge_detail(request, slug):
    challenge = get_object_or_404(Challenge, slug=slug)
    return render(request, "challenge.html", {
        "challenge": challenge, "phases": challenge.phases.all(), "team": team_of(request.user, challenge),
        "team_rules": rules_context(),
    })


def phase_detail(request, slug, phase):
    phase = get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)
    team = team_of(request.user, phase.challenge)
    context = {
        "challenge": phase.challenge, "phase": phase, "team": team,
        "datasets": selectors.input_set_summary(phase), "organizer": is_organizer(request.user, phase),
        "direct_uploads": direct_uploads_enabled(), **data_context(request.user, phase),
    }
    if team:
        context["submissions"] = team_submissions(phase, team)
        context["quota"] = quota_status(phase, team, request.user)
        # A hidden phase shows the team no score of its own runs until the organizers publish them.
        context["show_scores"] = phase_scores_visible_to_team(phase, request.user)
        context["counted_id"] = counted_submission_id(phase, team, request.user)
    return render(request, "phase.html", context)
