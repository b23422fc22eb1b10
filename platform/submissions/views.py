import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from competitions import permissions
from competitions.data_views import data_context
from competitions.models import InputImage, Phase
from competitions.selectors import input_set_summary
from scoring.profile import LOWER_IS_BETTER, METRIC_LABELS
from scoring.provenance import describe as describe_provenance
from submissions import selectors, services
from submissions.charts import history_charts, image_histograms
from submissions.models import ImageScore, Submission
from submissions.refusals import SubmissionRefused
from submissions.uploads import direct_uploads_enabled
from teams.models import Membership, Team
from teams.services import open_invitations, team_of

# The phase and team pages show the team's submissions, so they live here, above competitions and teams.


def phase_detail(request, slug, phase):
    phase = get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)
    team = team_of(request.user, phase.challenge)
    context = {
        "challenge": phase.challenge, "phase": phase, "team": team,
        "datasets": input_set_summary(phase), "organizer": permissions.is_phase_organizer(request.user, phase),
        "direct_uploads": direct_uploads_enabled(), **data_context(request.user, phase),
    }
    if team:
        context["submissions"] = selectors.team_submissions(phase, team)
        context["quota"] = services.quota_status(phase, team, request.user)
        # A hidden phase shows the team no score of its own runs until the organizers publish them.
        context["show_scores"] = permissions.phase_scores_visible_to_team(phase, request.user)
        context["counted_id"] = selectors.counted_submission_id(phase, team, request.user)
        context["refusal"] = permissions.participation_refusal(request.user, phase.challenge)
    return render(request, "phase.html", context)


@login_required
def team_detail(request, pk):
    team = get_object_or_404(Team.objects.select_related("challenge"), pk=pk)
    if not permissions.can_view_team(request.user, team):
        raise Http404("No such team.")
    history = selectors.team_score_history(team, request.user)  # only the phases whose scores the viewer may see
    return render(request, "team.html", {
        "team": team, "challenge": team.challenge,
        "is_member": Membership.objects.filter(team=team, user=request.user).exists(),
        "members": team.memberships.select_related("user").order_by("joined_at"),
        "invitations": open_invitations(team),
        "is_owner": team.memberships.filter(user=request.user, is_owner=True).exists(),
        "history": history, "chart_data": history_charts(history),
    })


@login_required
@require_POST
def upload(request, slug, phase):
    phase = get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)
    try:
        submission = services.submit_archive(
            phase=phase, user=request.user, archive=request.FILES.get("archive"),
            description=request.POST.get("description", ""),
            too_large=bool(getattr(request, "archive_too_large", None)))
    except SubmissionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Submission {submission.pk} received; it is queued for checking.")
        return redirect("submission-detail", pk=submission.pk)
    return redirect("phase-detail", slug=slug, phase=phase.slug)


def _visible_submission(request, pk) -> Submission:
    submission = get_object_or_404(Submission.objects.select_related("phase__challenge", "team"), pk=pk)
    if not permissions.can_view_submission(request.user, submission):
        raise Http404("No such submission.")  # 404, not 403: do not confirm that the id exists
    return submission


def _columns(keys) -> list[dict]:
    return [{"key": k, "label": METRIC_LABELS.get(k, k), "lower": k in LOWER_IS_BETTER} for k in keys]


def detail(request, pk):
    submission = _visible_submission(request, pk)
    show_scores = permissions.scores_visible_to_team(submission, request.user)
    result = getattr(submission, "result", None) if show_scores and submission.state == "scored" else None
    context = {
        "submission": submission, "phase": submission.phase, "challenge": submission.phase.challenge,
        "result": result, "show_scores": show_scores,
        "events": selectors.submission_log(submission, show_scores),
        "counted_id": selectors.counted_submission_id(submission.phase, submission.team, request.user),
    }
    if result is not None:
        profile_order = [term["metric"] for term in result.profile.get("terms", [])]
        metric_keys = [k for k in profile_order if k in result.metrics] + sorted(
            k for k in result.metrics if k not in profile_order)
        image_keys = [k for k in metric_keys if k != "fid"]
        images = list(result.images.all())
        context.update({
            "metric_columns": _columns(metric_keys), "image_columns": _columns(image_keys),
            "dataset_rows": [{"row": d, "values": [d.metrics.get(k) for k in metric_keys]}
                             for d in result.datasets.all()],
            "overall_values": [result.metrics.get(k) for k in metric_keys],
            "image_rows": [{"row": i, "values": [i.metrics.get(k) for k in image_keys]} for i in images],
            "failed_images": [i for i in images if i.id_failed],
            "chart_data": image_histograms(images, image_keys),
            "provenance": describe_provenance(result.versions),
        })
    return render(request, "submission.html", context)


def status_json(request, pk):
    submission = _visible_submission(request, pk)
    return JsonResponse(selectors.submission_status(
        submission, include_scores=permissions.scores_visible_to_team(submission, request.user)))


@login_required
@require_POST
def select(request, pk):
    submission = _visible_submission(request, pk)
    if submission.phase.selection != Phase.Selection.SELECTED:
        messages.error(request, "In this phase the submission that counts is chosen by rule, not by the team.")
    elif submission.state != Submission.State.SCORED:
        messages.error(request, "Only a scored submission can be the one that counts.")
    elif not permissions.may_change_selection(request.user, submission.phase):
        messages.error(request, "The phase is closed: the submission that counts can no longer be changed.")
    else:
        services.select_submission(submission)
        messages.success(request, f"Submission {submission.pk} now counts for your team in {submission.phase.name}.")
    return redirect("submission-detail", pk=pk)


@login_required
@require_POST
def attach_factsheet(request, pk):
    submission = _visible_submission(request, pk)
    try:
        services.attach_factsheet(submission, user=request.user, factsheet=request.FILES.get("factsheet"),
                                  code_url=request.POST.get("code_url", "").strip())
    except SubmissionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Factsheet and code link saved; the organizers will verify them.")
    return redirect("submission-detail", pk=pk)


# --------------------------------------------------------------------------- images

def _png_response(handle, filename: str) -> HttpResponse:
    """A stored PNG for the page's <img> tags only: never sniffed, never a document, never cached publicly."""
    response = FileResponse(handle, content_type="image/png")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "image"
    response["Content-Disposition"] = f'inline; filename="{safe[:150]}.png"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    response["Cache-Control"] = "private, max-age=300"
    return response


def _open_stored(name: str):
    try:
        return default_storage.open(name, "rb")
    except (FileNotFoundError, OSError):
        raise Http404("No such image.") from None


@require_GET
def restored_image(request: HttpRequest, pk: int, dataset: str, stem: str) -> HttpResponse:
    """A restored image that failed the identity test, kept by the worker; to those who may see the
    submission's scores (the team, the organizers)."""
    submission = _visible_submission(request, pk)
    if submission.state != Submission.State.SCORED or not permissions.scores_visible_to_team(submission, request.user):
        raise Http404("No such image.")
    image = ImageScore.objects.filter(result__submission=submission, dataset=dataset, stem=stem,
                                      id_failed=True).values_list("dataset", "stem").first()
    if image is None:
        raise Http404("No such image.")
    handle = _open_stored(selectors.restored_image_name(submission.pk, *image))
    return _png_response(handle, f"submission-{submission.pk}-{image[0]}-{image[1]}-restored")


@require_GET
def input_image(request: HttpRequest, pk: int, dataset: str, stem: str) -> HttpResponse:
    """One of the phase's (low-quality) inputs, to those who may see the submission."""
    submission = _visible_submission(request, pk)
    row = InputImage.objects.filter(dataset__phase_id=submission.phase_id, dataset__name=dataset,
                                    stem=stem).values_list("file", flat=True).first()
    if not row:
        raise Http404("No such image.")
    return _png_response(_open_stored(row), f"{dataset}-{stem}-input")
