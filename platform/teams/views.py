from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from competitions import selectors as challenge_selectors
from competitions.markdown import render_markdown
from competitions.models import Challenge, ChallengePage
from competitions.permissions import participation_refusal
from teams import services
from teams.models import Invitation, Team


def challenge_detail(request, slug, page=None):
    challenge = get_object_or_404(Challenge, slug=slug)
    pages = challenge_selectors.challenge_pages(challenge)
    shown = next((p for p in pages if p.slug == page), None) if page else (pages[0] if pages else None)
    if page and shown is None:
        raise Http404("No such page.")
    body = render_markdown(shown.body) if shown else ""
    generated = ""
    if shown and shown.kind == ChallengePage.Kind.EVALUATION:
        generated = render_markdown(challenge_selectors.evaluation_markdown(challenge))
    terms = next((p for p in pages if p.kind == ChallengePage.Kind.TERMS), None)
    return render(request, "challenge.html", {
        "challenge": challenge, "team": services.team_of(request.user, challenge),
        "team_rules": services.rules_context(), "pages": pages, "page": shown, "page_html": body,
        "generated_html": generated, "timeline": challenge_selectors.phase_timeline(challenge),
        "registration": challenge_selectors.registration_of(request.user, challenge),
        "refusal": participation_refusal(request.user, challenge) if request.user.is_authenticated else None,
        # current_terms_version's value, from the page already read
        "terms": terms, "terms_version": (terms.version or 0) if terms else 0,
        "profile": getattr(request.user, "profile", None) if request.user.is_authenticated else None,
    })


@login_required
def create(request, slug):
    challenge = get_object_or_404(Challenge, slug=slug)
    if request.method == "POST":
        try:
            team = services.create_team(challenge=challenge, name=request.POST.get("name", ""), user=request.user)
        except services.TeamError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Team {team.name} created.")
            return redirect("team-detail", pk=team.pk)
    return render(request, "team_create.html", {"challenge": challenge, "team_rules": services.rules_context()})


@login_required
@require_POST
def invite(request, pk):
    team = get_object_or_404(Team, pk=pk)
    try:
        invitation = services.invite(team=team, by_user=request.user, username=request.POST.get("username") or None)
    except services.TeamError as exc:
        messages.error(request, str(exc))
    else:
        link = request.build_absolute_uri(f"/teams/join/{invitation.token}/")
        who = f" for {invitation.invited_user.username}" if invitation.invited_user else ""
        messages.success(request, f"Invitation{who} created: {link}")
    return redirect("team-detail", pk=pk)


@login_required
def join(request, token):
    invitation = Invitation.objects.select_related("team__challenge").filter(token=token).first()
    challenge = invitation.team.challenge if invitation else None
    if request.method == "POST":
        try:
            team = services.join(token=token, user=request.user)
        except services.TeamError as exc:
            messages.error(request, str(exc))
            # Back to the challenge page, where registration is, when the link names a challenge.
            return redirect("challenge-detail", slug=challenge.slug) if challenge else redirect("home")
        messages.success(request, f"You joined {team.name}.")
        return redirect("team-detail", pk=team.pk)
    return render(request, "team_join.html", {
        "token": token, "challenge": challenge,
        "refusal": participation_refusal(request.user, challenge) if challenge else None})


@login_required
@require_POST
def leave(request, pk):
    team = get_object_or_404(Team, pk=pk)
    try:
        services.leave(team=team, user=request.user)
    except services.TeamError as exc:
        messages.error(request, str(exc))
        return redirect("team-detail", pk=pk)
    messages.success(request, f"You left {team.name}.")
    return redirect("challenge-detail", slug=team.challenge.slug)


@login_required
@require_POST
def revoke(request, pk, invitation_id):
    team = get_object_or_404(Team, pk=pk)
    try:
        services.revoke(team=team, invitation_id=invitation_id, by_user=request.user)
    except services.TeamError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Invitation revoked: its link no longer works.")
    return redirect("team-detail", pk=pk)


@login_required
@require_POST
def remove_member(request, pk):
    team = get_object_or_404(Team, pk=pk)
    username = request.POST.get("username", "")
    try:
        services.remove_member(team=team, by_user=request.user, username=username)
    except services.TeamError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{username} was removed from {team.name}; their submissions stay with the team.")
    return redirect("team-detail", pk=pk)
