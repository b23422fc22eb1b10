from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from competitions.models import Phase
from submissions import selectors, services
from submissions.models import Submission
from teams.services import team_of


@login_required
@require_POST
def upload(request, slug, phase):
    phase = get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)
    team = team_of(request.user, phase.challenge)
    archive = request.FILES.get("archive")
    if team is None:
        messages.error(request, "Join or create a team before submitting.")
    elif archive is None:
        messages.error(request, "Choose a zip archive to upload.")
    else:
        try:
            submission = services.create_submission(
                phase=phase, team=team, user=request.user, upload=archive,
                description=request.POST.get("description", ""),
            )
        except services.SubmissionRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Submission {submission.pk} received; it is queued for checking.")
            return redirect("submission-detail", pk=submission.pk)
    return redirect("phase-detail", slug=slug, phase=phase.slug)


def _visible_submission(request, pk) -> Submission:
    submission = get_object_or_404(Submission.objects.select_related("phase__challenge", "team"), pk=pk)
    if not selectors.can_view_submission(request.user, submission):
        raise Http404("No such submission.")  # 404, not 403: do not confirm that the id exists
    return submission


def detail(request, pk):
    submission = _visible_submission(request, pk)
    show_scores = selectors.scores_visible_to_team(submission, request.user)
    result = getattr(submission, "result", None) if show_scores and submission.state == "scored" else None
    return render(request, "submission.html", {
        "submission": submission, "phase": submission.phase, "challenge": submission.phase.challenge,
        "result": result, "show_scores": show_scores,
        "datasets": result.datasets.all() if result else [],
        "images": result.images.all() if result else [],
        "events": submission.events.all(),
    })


def status_json(request, pk):
    submission = _visible_submission(request, pk)
    return JsonResponse(selectors.submission_status(
        submission, include_scores=selectors.scores_visible_to_team(submission, request.user)))


@login_required
@require_POST
def select(request, pk):
    submission = _visible_submission(request, pk)
    services.select_submission(submission)
    messages.success(request, f"Submission {submission.pk} now counts for your team in {submission.phase.name}.")
    return redirect("submission-detail", pk=pk)
