from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from competitions import selectors, services
from competitions.data_views import data_context
from competitions.markdown import render_markdown
from competitions.models import Challenge, ChallengePage, Phase
from competitions.permissions import current_terms_version, participation_refusal
from leaderboard.selectors import is_organizer
from submissions.selectors import counted_submission_id, phase_scores_visible_to_team, team_submissions
from submissions.services import quota_status
from submissions.uploads import direct_uploads_enabled
from teams.services import rules_context, team_of


def home(request):
    return render(request, "home.html", {"challenges": selectors.open_challenges()})


def challenge_detail(request, slug, page=None):
    challenge = get_object_or_404(Challenge, slug=slug)
    pages = selectors.challenge_pages(challenge)
    shown = next((p for p in pages if p.slug == page), None) if page else (pages[0] if pages else None)
    if page and shown is None:
        raise Http404("No such page.")
    body = render_markdown(shown.body) if shown else ""
    generated = ""
    if shown and shown.kind == ChallengePage.Kind.EVALUATION:
        generated = render_markdown(selectors.evaluation_markdown(challenge))
    terms = next((p for p in pages if p.kind == ChallengePage.Kind.TERMS), None)
    return render(request, "challenge.html", {
        "challenge": challenge, "phases": challenge.phases.all(), "team": team_of(request.user, challenge),
        "team_rules": rules_context(), "pages": pages, "page": shown, "page_html": body,
        "generated_html": generated, "timeline": selectors.phase_timeline(challenge),
        "registration": selectors.registration_of(request.user, challenge),
        "refusal": participation_refusal(request.user, challenge) if request.user.is_authenticated else None,
        "terms": terms, "terms_version": current_terms_version(challenge),
        "profile": getattr(request.user, "profile", None) if request.user.is_authenticated else None,
    })


@login_required
@require_POST
def register(request, slug):
    """Register for the challenge, or accept its changed terms: one form on the challenge page."""
    challenge = get_object_or_404(Challenge, slug=slug)
    if request.POST.get("accept_terms") != "on":
        messages.error(request, "Tick the box to accept the terms.")
        return redirect("challenge-detail", slug=slug)
    try:
        version = int(request.POST.get("terms_version", ""))
    except ValueError:
        version = -1
    try:
        registration = services.register(user=request.user, challenge=challenge, terms_version=version,
                                         full_name=request.POST.get("full_name", ""),
                                         affiliation=request.POST.get("affiliation", ""))
    except services.RegistrationError as exc:
        messages.error(request, str(exc))
    else:
        if registration.status == registration.Status.PENDING:
            messages.success(request, "Registration received: the organizers approve each participant; "
                                      "we email you when they decide.")
        else:
            messages.success(request, f"You are registered for {challenge.title}.")
    return redirect("challenge-detail", slug=slug)


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
        context["refusal"] = participation_refusal(request.user, phase.challenge)
    return render(request, "phase.html", context)
