"""Writes for challenges and phases: create them, load a phase's input set; registrations and their terms."""

from __future__ import annotations

from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from competitions.data_services import request_phase_data
from competitions.models import Challenge, ChallengePage, InputDataset, InputImage, Phase, Registration
from scoring.inputs import InputSetError, check_landmarks_cover, read_landmarks, scan_inputs
from scoring.profile import NTIRE2025_THRESHOLDS, get_profile
from scoring.weights import sha256_of


def create_challenge(*, slug: str, title: str, description: str = "", max_team_size: int = 5,
                     organizers=(), registration_mode: str = Challenge.RegistrationMode.OPEN) -> Challenge:
    challenge = Challenge.objects.create(slug=slug, title=title, description=description,
                                         max_team_size=max_team_size, registration_mode=registration_mode)
    challenge.organizers.set(organizers)
    return challenge


def create_phase(*, challenge: Challenge, slug: str, name: str, scoring_profile: str,
                 profile_snapshot: dict | None = None, **fields) -> Phase:
    """``profile_snapshot``: the profile as another phase had it (a bundle's); by default the preset's."""
    profile = get_profile(scoring_profile)  # unknown names fail here, before anything is stored
    return Phase.objects.create(challenge=challenge, slug=slug, name=name, scoring_profile=profile.name,
                                profile_snapshot=profile_snapshot or profile.to_dict(), **fields)


def retargeted_snapshot(scoring_profile: str, thresholds: dict[str, float]) -> dict:
    """The preset's snapshot for a phase moving to it (next year's rules): the preset's identity thresholds win,
    datasets it does not know keep the thresholds they had."""
    profile = get_profile(scoring_profile).to_dict()
    profile["identity_thresholds"] = {**thresholds, **profile["identity_thresholds"]}
    return profile


def input_storage_name(sha256: str) -> str:
    # Input images are stored once per content: phases and editions sharing an image share its file.
    return f"inputs/sha256/{sha256}.png"


def store_input_file(sha256: str, content: File) -> tuple[str, bool]:
    """Store an input image under its sha256 unless it is there already; (storage name, whether written)."""
    name = input_storage_name(sha256)
    if default_storage.exists(name):
        return name, False
    return default_storage.save(name, content), True  # another name only if a concurrent writer came first



def load_input_set(phase: Phase, folder: Path, landmarks_csv: Path,
                   thresholds: dict[str, float] | None = None) -> int:
    """Replace the phase's input set with ``folder/<Dataset>/<stem>.png`` and their landmarks.

    Everything is checked before anything is written; a bad folder or CSV changes nothing.
    """
    images = scan_inputs(folder)
    landmarks = read_landmarks(landmarks_csv)
    check_landmarks_cover(images, landmarks)
    profile_thresholds = dict(phase.profile_snapshot.get("identity_thresholds") or NTIRE2025_THRESHOLDS)
    profile_thresholds.update(thresholds or {})
    unknown = sorted({img.dataset for img in images} - set(profile_thresholds))
    if unknown:
        raise InputSetError(f"no identity threshold for dataset(s): {', '.join(unknown)}")
    with transaction.atomic():
        phase.datasets.all().delete()
        datasets = {
            name: InputDataset.objects.create(phase=phase, name=name, identity_threshold=profile_thresholds[name])
            for name in sorted({img.dataset for img in images})
        }
        for img in images:
            lm = landmarks[img.stem]
            sha256 = sha256_of(img.path)
            with open(img.path, "rb") as handle:
                stored, _ = store_input_file(sha256, File(handle))
            InputImage.objects.create(dataset=datasets[img.dataset], stem=img.stem, width=img.width,
                                      height=img.height, sha256=sha256, file=stored,
                                      landmarks=[list(p) for p in lm.points], box=list(lm.box))
        if profile_thresholds != phase.profile_snapshot.get("identity_thresholds"):
            phase.profile_snapshot = {**phase.profile_snapshot, "identity_thresholds": profile_thresholds}
            phase.save(update_fields=["profile_snapshot"])
        request_phase_data(phase.pk)  # the downloads of this input-set version, built by a worker
    return len(images)


# --------------------------------------------------------------------------- registration


class ChallengeError(Exception):
    """Refused; ``code`` names the reason, the message is shown to the user as it is."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RegistrationError(ChallengeError):
    pass


class PageError(ChallengeError):
    pass


def _terms(challenge: Challenge) -> ChallengePage | None:
    return ChallengePage.objects.filter(challenge=challenge, kind=ChallengePage.Kind.TERMS).first()


def register(*, user, challenge: Challenge, terms_version: int, full_name: str, affiliation: str) -> Registration:
    """Ask to take part in ``challenge``, accepting the version of its terms the person read.

    Open registration approves at once; with approval the request waits for the organizers.
    """
    from accounts.models import email_verified
    from accounts.services import AccountError, update_profile
    from django.conf import settings

    if settings.FR_EMAIL_VERIFICATION and not email_verified(user):
        raise RegistrationError("email_unverified", "Verify your email address before you register: follow "
                                                    "the link we sent you.")
    try:
        update_profile(user, full_name=full_name, affiliation=affiliation)
    except AccountError as exc:
        raise RegistrationError(exc.code, str(exc)) from None
    with transaction.atomic():
        existing = Registration.objects.select_for_update().filter(user=user, challenge=challenge).first()
        if existing is not None:
            if existing.status in (Registration.Status.DENIED, Registration.Status.REVOKED):
                raise RegistrationError("registration_closed", f"Your registration is {existing.status}; "
                                                               "write to the organizers if you think that is wrong.")
            return accept_terms(user=user, challenge=challenge, terms_version=terms_version)
        registration = Registration(user=user, challenge=challenge)
        _record_terms(registration, challenge, terms_version)
        if challenge.registration_mode == Challenge.RegistrationMode.OPEN:
            registration.status, registration.decided_at = Registration.Status.APPROVED, timezone.now()
        registration.save()
    return registration


def _record_terms(registration: Registration, challenge: Challenge, terms_version: int) -> None:
    terms = _terms(challenge)
    current = terms.version if terms else 0
    if terms_version != current:
        raise RegistrationError("terms_changed", f"The terms changed while you read them (now version {current}); "
                                                 "read them again and accept.")
    registration.terms_version = current
    registration.terms_sha256 = terms.sha256 if terms else ""
    registration.terms_accepted_at = timezone.now()


def accept_terms(*, user, challenge: Challenge, terms_version: int) -> Registration:
    """Accept the challenge's current terms again (after they changed)."""
    with transaction.atomic():
        registration = Registration.objects.select_for_update().filter(user=user, challenge=challenge).first()
        if registration is None:
            raise RegistrationError("not_registered", "Register for the challenge first.")
        _record_terms(registration, challenge, terms_version)
        registration.save(update_fields=["terms_version", "terms_sha256", "terms_accepted_at"])
    return registration


def _email_decision(registration: Registration, subject: str, text: str) -> None:
    from django.core.mail import send_mail

    if registration.user.email:
        body = f"Hello {registration.user.username},\n\n{text}\n"
        if registration.message:
            body += f"\nThe organizers wrote:\n\n{registration.message}\n"
        send_mail(subject, body, None, [registration.user.email])


def decide_registrations(*, challenge: Challenge, registration_ids, approve: bool, by_user,
                         message: str = "") -> int:
    """Approve or deny the challenge's registrations ``registration_ids`` (pending, denied or revoked ones;
    approving an approved one changes nothing); each participant is emailed. The number decided."""
    new_status = Registration.Status.APPROVED if approve else Registration.Status.DENIED
    with transaction.atomic():
        chosen = list(Registration.objects.select_for_update().select_related("user")
                      .filter(challenge=challenge, pk__in=list(registration_ids)).exclude(status=new_status))
        now = timezone.now()
        for registration in chosen:
            registration.status, registration.decided_at, registration.decided_by = new_status, now, by_user
            registration.message = message.strip()
            registration.save(update_fields=["status", "decided_at", "decided_by", "message"])
        verb = "approved" if approve else "declined"
        for registration in chosen:
            transaction.on_commit(lambda r=registration: _email_decision(
                r, f"{challenge.title}: registration {verb}",
                f"the organizers of {challenge.title} {verb} your registration."
                + (" You can now create or join a team, download the data and submit." if approve else "")))
    return len(chosen)


def revoke_registration(*, challenge: Challenge, registration_id: int, by_user, message: str = "") -> Registration:
    """End a participant's access; what their team submitted stays (and stays on the board)."""
    with transaction.atomic():
        registration = (Registration.objects.select_for_update().select_related("user")
                        .filter(challenge=challenge, pk=registration_id).first())
        if registration is None:
            raise RegistrationError("no_registration", "There is no such registration in this challenge.")
        registration.status, registration.decided_at, registration.decided_by = (
            Registration.Status.REVOKED, timezone.now(), by_user)
        registration.message = message.strip()
        registration.save(update_fields=["status", "decided_at", "decided_by", "message"])
        transaction.on_commit(lambda: _email_decision(
            registration, f"{challenge.title}: participation revoked",
            f"the organizers of {challenge.title} revoked your participation."))
    return registration


# --------------------------------------------------------------------------- challenge pages

PAGE_DEFAULTS = {  # the fixed pages' slugs, titles and tab order
    ChallengePage.Kind.OVERVIEW: ("overview", "Overview", 0),
    ChallengePage.Kind.EVALUATION: ("evaluation", "Evaluation", 10),
    ChallengePage.Kind.DATA: ("data", "Data", 20),
    ChallengePage.Kind.TERMS: ("terms", "Terms", 30),
}


def page_slug(kind: str, slug: str, title: str) -> str:
    """The address a page of ``kind`` gets: a fixed one for Overview, Evaluation, Terms and Data, else the slug
    asked for (or the title's), slugified. Empty when neither gives one."""
    from django.utils.text import slugify

    default_slug = PAGE_DEFAULTS.get(kind, ("", "", 40))[0]
    return default_slug or slugify(slug or title)[:50]


def save_page(*, challenge: Challenge, kind: str, body: str, title: str = "", slug: str = "",
              order: int | None = None, page: ChallengePage | None = None) -> ChallengePage:
    """Create or change a Markdown page. Changing the Terms page's text makes a new version: everyone
    accepts it again before they next take part."""
    from django.db import IntegrityError

    if kind not in ChallengePage.Kind.values:
        raise PageError("page_kind", f"Unknown page kind {kind!r}.")
    _, default_title, default_order = PAGE_DEFAULTS.get(kind, ("", "", 40))
    title = (title or default_title).strip()[:100]
    slug = page_slug(kind, slug, title)
    if not title or not slug:
        raise PageError("page_title", "An extra page needs a title.")
    with transaction.atomic():
        if page is None:
            page = ChallengePage.objects.select_for_update().filter(challenge=challenge, kind=kind).first() \
                if kind != ChallengePage.Kind.EXTRA else None
        if page is None:
            page = ChallengePage(challenge=challenge, kind=kind, order=default_order)
        elif page.kind == ChallengePage.Kind.TERMS and page.body != body:
            page.version += 1
        page.slug, page.title, page.body = slug, title, body
        if order is not None:
            page.order = order
        try:
            with transaction.atomic():
                page.save()
        except IntegrityError:
            raise PageError("page_slug", f"This challenge has a page at {slug!r} already.") from None
    return page


def delete_page(page: ChallengePage) -> None:
    if page.kind == ChallengePage.Kind.TERMS:
        # Without a Terms page the terms are version 0: everyone would have to "accept" again.
        raise PageError("page_terms", "The Terms page can be changed but not removed.")
    page.delete()
