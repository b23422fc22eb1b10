from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from competitions import selectors, services
from competitions.models import Challenge


def home(request):
    return render(request, "home.html", {"challenges": selectors.open_challenges()})


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
