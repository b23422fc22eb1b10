"""The organizer pages. Every view checks that the user organizes the challenge (403 otherwise; 404 for an
object looked up by id, so as not to confirm it exists); every action is a POST with a CSRF token."""

from __future__ import annotations

import tempfile
from pathlib import PurePosixPath

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from competitions import data_selectors, data_services, permissions
from competitions.models import Challenge, Phase
from competitions.selectors import input_set_summary
from leaderboard.selectors import (
    METRIC_LABELS,
    phase_leaderboard,
    rank_stability_view,
    shown_metrics,
    unresolved_places,
)
from leaderboard.services import request_rank_stability
from organizers import bundles, exports, selectors, services
from organizers.forms import (
    BaselineForm,
    BundleImportForm,
    ChallengeForm,
    EmailForm,
    ExtraFileForm,
    InputSetForm,
    NewEditionForm,
    PageForm,
    PhaseForm,
    RegistrationDecisionForm,
    RerunForm,
)
from organizers.models import InputSetJob
from scoring.inputs import InputSetError
from submissions import services as submission_services
from submissions.models import Submission
from teams.models import Team

# --------------------------------------------------------------------------- lookups with the permission check


def _challenge(request: HttpRequest, slug: str) -> Challenge:
    challenge = get_object_or_404(Challenge, slug=slug)
    if not permissions.is_organizer(request.user, challenge):
        raise PermissionDenied("Only the challenge's organizers may see this page.")
    return challenge


def _phase(request: HttpRequest, slug: str, phase: str) -> Phase:
    found = get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)
    if not permissions.is_organizer(request.user, found.challenge):
        raise PermissionDenied("Only the challenge's organizers may see this page.")
    return found


def _submission(request: HttpRequest, pk: int) -> Submission:
    submission = get_object_or_404(Submission.objects.select_related("phase__challenge", "team"), pk=pk)
    if not permissions.is_organizer(request.user, submission.phase.challenge):
        raise Http404("No such submission.")
    return submission


def _team(request: HttpRequest, pk: int) -> Team:
    team = get_object_or_404(Team.objects.select_related("challenge"), pk=pk)
    if not permissions.is_organizer(request.user, team.challenge):
        raise Http404("No such team.")
    return team


def _back(request: HttpRequest, default: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(default)


def _checked(request: HttpRequest, name: str) -> bool:
    return request.POST.get(name, "") in ("1", "on", "true", "yes")


# --------------------------------------------------------------------------- challenges


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        raise PermissionDenied("Log in as an organizer.")
    challenges = selectors.organized_challenges(request.user)
    can_create = permissions.can_create_challenge(request.user)
    if not can_create and not challenges.exists():
        raise PermissionDenied("You organize no challenge.")
    return render(request, "organizers/dashboard.html", {"challenges": challenges, "can_create": can_create})


@require_http_methods(["GET", "POST"])
def challenge_create(request: HttpRequest) -> HttpResponse:
    if not permissions.can_create_challenge(request.user):
        raise PermissionDenied("Only staff may create challenges.")
    form = ChallengeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            challenge = services.create_challenge(user=request.user, **form.cleaned_data)
        except services.OrganizerError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Challenge {challenge.title} created. Add its phases.")
            return redirect("organizers:challenge", slug=challenge.slug)
    return render(request, "organizers/challenge_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
def bundle_import(request: HttpRequest) -> HttpResponse:
    if not permissions.can_create_challenge(request.user):
        raise PermissionDenied("Only staff may create challenges.")
    form = BundleImportForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            done = services.import_bundle_upload(data["bundle"], slug=data["slug"], start=data["start"],
                                                 user=request.user, title=data["title"])
        except bundles.BundleInvalid as exc:
            problems = [str(problem) for problem in exc.problems]
        else:
            return _imported(request, done)
    return render(request, "organizers/bundle_import.html", {"form": form, "problems": problems})


def _imported(request: HttpRequest, done: services.BundleImported) -> HttpResponse:
    messages.success(request, f"Challenge {done.challenge.title} created: {done.phases} phase(s), {done.images}"
                              f" input image(s), {len(done.baselines)} baseline(s) queued for scoring.")
    return redirect("organizers:challenge", slug=done.challenge.slug)


@require_GET
def bundle_download(request: HttpRequest, slug: str) -> HttpResponse:
    challenge = _challenge(request, slug)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it once sent
    bundles.export_bundle(challenge, spool)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=f"{slug}-bundle.zip", content_type="application/zip")


@require_http_methods(["GET", "POST"])
def new_edition(request: HttpRequest, slug: str) -> HttpResponse:
    challenge = _challenge(request, slug)
    if not permissions.can_create_challenge(request.user):
        raise PermissionDenied("Only staff may create challenges.")
    form = NewEditionForm(request.POST or None, challenge=challenge)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            done = services.new_edition(challenge, slug=data["slug"], start=data["start"], user=request.user,
                                        title=data["title"], profiles=form.profiles())
        except bundles.BundleInvalid as exc:
            problems = [str(problem) for problem in exc.problems]
        else:
            return _imported(request, done)
    return render(request, "organizers/new_edition.html", {"challenge": challenge, "form": form,
                                                           "problems": problems})


@require_http_methods(["GET", "POST"])
def challenge_home(request: HttpRequest, slug: str) -> HttpResponse:
    challenge = _challenge(request, slug)
    form = ChallengeForm(request.POST or None, challenge=challenge)
    if request.method == "POST" and form.is_valid():
        services.update_challenge(challenge, **form.cleaned_data)
        messages.success(request, "Challenge saved.")
        return redirect("organizers:challenge", slug=challenge.slug)
    return render(request, "organizers/challenge.html", {
        "challenge": challenge, "form": form, "phases": challenge.phases.all(),
        "can_create": permissions.can_create_challenge(request.user),
        "organizers": challenge.organizers.order_by("username"),
        "pending_count": challenge.registrations.filter(status="pending").count(),
    })


@require_http_methods(["GET", "POST"])
def phase_create(request: HttpRequest, slug: str) -> HttpResponse:
    challenge = _challenge(request, slug)
    form = PhaseForm(request.POST or None, challenge=challenge)
    if request.method == "POST" and form.is_valid():
        try:
            phase = services.create_phase(challenge=challenge, **form.phase_fields())
        except services.OrganizerError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Phase {phase.name} created. Upload its input set.")
            return redirect("organizers:phase", slug=challenge.slug, phase=phase.slug)
    return render(request, "organizers/phase_form.html", {"challenge": challenge, "form": form, "phase": None})


# --------------------------------------------------------------------------- a phase


def _phase_page(request: HttpRequest, phase: Phase, *, input_form: InputSetForm | None = None,
                baseline_form: BaselineForm | None = None, extra_form: ExtraFileForm | None = None) -> HttpResponse:
    metrics = shown_metrics(phase)
    entries = selectors.phase_entries(phase)
    data_files = data_selectors.phase_files(phase)
    return render(request, "organizers/phase.html", {
        "challenge": phase.challenge, "phase": phase, "datasets": input_set_summary(phase),
        "input_form": input_form or InputSetForm(), "baseline_form": baseline_form or BaselineForm(),
        "rerun_form": RerunForm(), "input_set_jobs": selectors.recent_input_set_jobs(phase),
        "entries": entries, "metric_labels": [METRIC_LABELS.get(m, m) for m in metrics],
        "unverified": selectors.unverified_count(phase, entries), "rerunnable": selectors.rerun_count(phase),
        "recipients": selectors.phase_recipients(phase).count(),
        "places": unresolved_places(rank_stability_view(phase, request.user).data),
        "data_files": data_files, "data_pending": data_selectors.data_pending(phase, data_files),
        "download_counts": data_selectors.download_counts(phase), "extra_form": extra_form or ExtraFileForm(),
    })


@require_GET
def phase_home(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    return _phase_page(request, _phase(request, slug, phase))


@require_http_methods(["GET", "POST"])
def phase_edit(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    form = PhaseForm(request.POST or None, challenge=found.challenge, phase=found)
    if request.method == "POST" and form.is_valid():
        fields = form.phase_fields()
        fields.pop("slug", None)
        services.update_phase(found, **fields)
        messages.success(request, f"Phase {found.name} saved.")
        return redirect("organizers:phase", slug=slug, phase=found.slug)
    return render(request, "organizers/phase_form.html", {"challenge": found.challenge, "form": form, "phase": found})


@require_POST
def phase_publish(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    publish = _checked(request, "published")
    try:
        services.set_published(found, publish, allow_unverified=_checked(request, "allow_unverified"))
    except services.OrganizerError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"The scores of {found.name} are {'now public' if publish else 'hidden again'}.")
    return redirect("organizers:phase", slug=slug, phase=found.slug)


@require_POST
def input_set_upload(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    form = InputSetForm(request.POST, request.FILES)
    if not form.is_valid():
        return _phase_page(request, found, input_form=form)
    try:
        outcome = services.load_input_set_upload(found, form.cleaned_data["archive"], form.cleaned_data["landmarks"],
                                                 form.cleaned_data["thresholds"], by_user=request.user)
    except InputSetError as exc:
        form.add_error(None, str(exc))
        return _phase_page(request, found, input_form=form)
    if isinstance(outcome, InputSetJob):  # RetinaFace runs on a worker: its progress page
        return redirect("organizers:input-set-job", slug=slug, phase=found.slug, pk=outcome.pk)
    messages.success(request, f"Input set stored: {outcome.images} images ({outcome.from_csv} landmarks from the"
                              " CSV).")
    return redirect("organizers:phase", slug=slug, phase=found.slug)


def _job(request: HttpRequest, slug: str, phase: str, pk: int) -> tuple[Phase, InputSetJob]:
    found = _phase(request, slug, phase)
    return found, get_object_or_404(InputSetJob, pk=pk, phase=found)


@require_GET
def input_set_job(request: HttpRequest, slug: str, phase: str, pk: int) -> HttpResponse:
    found, job = _job(request, slug, phase, pk)
    return render(request, "organizers/input_set_job.html", {
        "challenge": found.challenge, "phase": found, "job": job, "status": selectors.input_set_job_status(job)})


@require_GET
def input_set_job_json(request: HttpRequest, slug: str, phase: str, pk: int) -> HttpResponse:
    _found, job = _job(request, slug, phase, pk)
    return JsonResponse(selectors.input_set_job_status(job))


@require_POST
def phase_rerun(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    form = RerunForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    count = len(submission_services.rerun_phase(found, request.user, reason))
    plural = "" if count == 1 else "s"
    messages.success(request, f"{count} submission{plural} of {found.name} queued to be scored again.")
    return _back(request, reverse("organizers:phase", args=[slug, found.slug]))


@require_POST
def rank_stability(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)

    def number(name: str, low: int, high: int) -> int | None:
        try:
            return min(max(int(request.POST.get(name, "")), low), high)
        except ValueError:
            return None

    request_rank_stability(found.pk, by_user=request.user, resamples=number("resamples", 10, 100_000),
                           seed=number("seed", 0, 2**62))
    messages.success(request, f"The rank-stability analysis of {found.name}'s current board is queued.")
    return _back(request, reverse("rank-stability", args=[slug, found.slug]))


@require_POST
def baseline_add(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    form = BaselineForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            submission = services.add_baseline(phase=found, name=form.cleaned_data["name"],
                                               upload=form.cleaned_data["archive"], by_user=request.user,
                                               description=form.cleaned_data["description"])
        except services.OrganizerError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Baseline {submission.team.name}: submission {submission.pk} queued.")
            return redirect("organizers:phase", slug=slug, phase=found.slug)
    return _phase_page(request, found, baseline_form=form)


@require_POST
def extra_file_add(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    form = ExtraFileForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            added = data_services.add_extra_file(found, form.cleaned_data["file"], title=form.cleaned_data["title"],
                                                 by_user=request.user)
        except data_services.DataError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{added.name} is now offered on the phase page.")
            return redirect("organizers:phase", slug=slug, phase=found.slug)
    return _phase_page(request, found, extra_form=form)


@require_POST
def extra_file_delete(request: HttpRequest, slug: str, phase: str, file_id: int) -> HttpResponse:
    found = _phase(request, slug, phase)
    try:
        data_services.delete_extra_file(found, file_id)
    except data_services.DataError as exc:
        raise Http404(str(exc)) from None
    messages.success(request, "The file was removed.")
    return redirect("organizers:phase", slug=slug, phase=found.slug)


@require_POST
def data_build(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    data_services.request_phase_data(found.pk)
    messages.success(request, "The downloads are being built; reload the page in a minute.")
    return redirect("organizers:phase", slug=slug, phase=found.slug)


@require_http_methods(["GET", "POST"])
def phase_email(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    form = EmailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        sent = services.email_phase_teams(found, by_user=request.user, **form.cleaned_data)
        messages.success(request, f"Message sent to {sent} participant{'' if sent == 1 else 's'}.")
        return redirect("organizers:phase", slug=slug, phase=found.slug)
    return render(request, "organizers/email.html", {
        "challenge": found.challenge, "phase": found, "form": form,
        "recipients": selectors.phase_recipients(found),
    })


# --------------------------------------------------------------------------- exports


@require_GET
def leaderboard_csv(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    """The leaderboard as CSV, under the same visibility rules as the page and its JSON: anyone may fetch it,
    and hidden scores are left out for everyone but the organizers (the header alone)."""
    found = get_object_or_404(Phase.objects.select_related("challenge"), challenge__slug=slug, slug=phase)
    board = phase_leaderboard(found, request.user)
    response = HttpResponse(exports.leaderboard_csv(board), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}-{found.slug}-leaderboard.csv"'
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def results_zip(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it once sent
    exports.results_zip(found, spool)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=f"{slug}-{found.slug}-eval-csv.zip",
                        content_type="application/zip")


@require_GET
def archives_zip(request: HttpRequest, slug: str, phase: str) -> HttpResponse:
    found = _phase(request, slug, phase)
    response = StreamingHttpResponse(exports.stream_archives(found), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{slug}-{found.slug}-archives.zip"'
    return response


# --------------------------------------------------------------------------- the queue


@require_GET
def queue(request: HttpRequest, slug: str) -> HttpResponse:
    challenge = _challenge(request, slug)
    state = request.GET.get("state", "")
    phase_slug = request.GET.get("phase", "")
    overview = selectors.queue_overview(
        challenge, state=state if state in Submission.State.values else "", phase_slug=phase_slug)
    return render(request, "organizers/queue.html", {
        "challenge": challenge, "queue": overview, "teams": selectors.challenge_teams(challenge),
        "state_filter": state, "phase_filter": phase_slug, "final_states": Submission.FINAL_STATES,
        "active_states": Submission.ACTIVE_STATES, "rerunnable_states": submission_services.RERUNNABLE_STATES,
        "next": request.get_full_path(),
    })


@require_POST
def submission_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _submission(request, pk)
    if submission_services.cancel_submission(submission, request.user):
        messages.success(request, f"Submission {pk} cancelled.")
    else:
        messages.error(request, f"Submission {pk} could not be cancelled: it is {submission.get_state_display()}.")
    return _back(request, reverse("organizers:queue", args=[submission.phase.challenge.slug]))


@require_POST
def submission_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _submission(request, pk)
    if submission_services.rerun_submission(submission, request.user, request.POST.get("reason", "")[:200]):
        messages.success(request, f"Submission {pk} queued to be scored again.")
    else:
        messages.error(request, str(submission_services.rerun_refusal(submission)))
    return _back(request, reverse("organizers:queue", args=[submission.phase.challenge.slug]))


@require_POST
def submission_verify(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _submission(request, pk)
    verified = _checked(request, "verified")
    services.set_verified(submission, verified)
    messages.success(request, f"Submission {pk} of {submission.team.name} marked "
                              f"{'verified' if verified else 'not verified'}.")
    phase = submission.phase
    return _back(request, reverse("organizers:phase", args=[phase.challenge.slug, phase.slug]))


@require_GET
def submission_factsheet(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _submission(request, pk)
    if not submission.factsheet:
        raise Http404("This submission has no factsheet.")
    return FileResponse(default_storage.open(submission.factsheet.name, "rb"), as_attachment=True,
                        filename=f"{exports.safe_name(submission.team.name)}--{pk}-"
                                 f"{PurePosixPath(submission.factsheet.name).name}")


@require_POST
def team_disqualify(request: HttpRequest, pk: int) -> HttpResponse:
    team = _team(request, pk)
    disqualified = _checked(request, "disqualified")
    services.set_disqualified(team, disqualified)
    messages.success(request, f"Team {team.name} {'disqualified' if disqualified else 'requalified'}.")
    return _back(request, reverse("organizers:queue", args=[team.challenge.slug]))


# --------------------------------------------------------------------------- pages and registrations


@require_http_methods(["GET", "POST"])
def pages(request: HttpRequest, slug: str, page_id: int | None = None) -> HttpResponse:
    """The challenge's Markdown pages: the list, and the form for a new page or the one chosen."""
    from competitions import services as competition_services
    from competitions.models import ChallengePage
    from competitions.selectors import challenge_pages

    challenge = _challenge(request, slug)
    page = get_object_or_404(ChallengePage, challenge=challenge, pk=page_id) if page_id else None
    form = PageForm(request.POST or None, page=page, initial=None if page else {"kind": request.GET.get("kind")})
    if request.method == "POST" and request.POST.get("delete") and page is not None:
        try:
            competition_services.delete_page(page)
        except competition_services.PageError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Page {page.title} removed.")
        return redirect("organizers:pages", slug=slug)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = competition_services.save_page(
                challenge=challenge, kind=page.kind if page else data["kind"], body=data["body"],
                title=data["title"], order=data["order"], page=page)
        except competition_services.PageError as exc:
            form.add_error(None, str(exc))
        else:
            note = f" (Terms version {saved.version}: participants accept it again)" if saved.kind == "terms" else ""
            messages.success(request, f"Page {saved.title} saved.{note}")
            return redirect("organizers:page", slug=slug, page_id=saved.pk)
    return render(request, "organizers/pages.html", {"challenge": challenge, "pages": challenge_pages(challenge),
                                                     "page": page, "form": form})


@require_http_methods(["GET", "POST"])
def registrations(request: HttpRequest, slug: str) -> HttpResponse:
    """Registration requests: approve or deny one or many with a message; revoke a participant."""
    from competitions import services as competition_services
    from competitions.selectors import registrations as challenge_registrations

    challenge = _challenge(request, slug)
    rows = challenge_registrations(challenge).order_by("status", "created_at")
    form = RegistrationDecisionForm(request.POST or None, choices=[(r.pk, r.user.username) for r in rows])
    if request.method == "POST" and request.POST.get("revoke"):
        try:
            revoked = competition_services.revoke_registration(
                challenge=challenge, registration_id=int(request.POST["revoke"]), by_user=request.user,
                message=request.POST.get("message", ""))
        except (ValueError, competition_services.RegistrationError) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{revoked.user.username}'s participation revoked; their team's "
                                      "submissions stay.")
        return redirect("organizers:registrations", slug=slug)
    if request.method == "POST" and form.is_valid():
        approve = form.cleaned_data["decision"] == "approve"
        count = competition_services.decide_registrations(
            challenge=challenge, registration_ids=form.cleaned_data["registrations"], approve=approve,
            by_user=request.user, message=form.cleaned_data["message"])
        messages.success(request, f"{count} registration{'' if count == 1 else 's'} "
                                  f"{'approved' if approve else 'denied'}; each participant was emailed.")
        return redirect("organizers:registrations", slug=slug)
    return render(request, "organizers/registrations.html", {"challenge": challenge, "rows": rows, "form": form})


@require_GET
def participants_csv(request: HttpRequest, slug: str) -> HttpResponse:
    challenge = _challenge(request, slug)
    response = HttpResponse(exports.participants_csv(challenge), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}-participants.csv"'
    response["Cache-Control"] = "private, no-store"
    return response
