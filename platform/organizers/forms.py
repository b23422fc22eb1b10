"""Forms of the organizer pages: they check what was typed; services.py writes."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from competitions.models import Challenge, ChallengePage, Phase
from leaderboard.selectors import METRIC_LABELS
from scoring.profile import ALL_METRICS, NEXT_EDITION, PRESETS

MIB = 1024**2
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def _datetime_widget() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT)


class ChallengeForm(forms.Form):
    slug = forms.SlugField(max_length=50, help_text="Part of the address: /c/<slug>/")
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    max_team_size = forms.IntegerField(min_value=1, max_value=100, initial=5, label="Team size cap")
    registration_mode = forms.ChoiceField(choices=Challenge.RegistrationMode.choices, required=False,
                                          initial=Challenge.RegistrationMode.OPEN, label="Registration")

    def __init__(self, *args: Any, challenge: Challenge | None = None, **kwargs: Any) -> None:
        if challenge is not None:
            kwargs.setdefault("initial", {
                "slug": challenge.slug, "title": challenge.title, "description": challenge.description,
                "max_team_size": challenge.max_team_size, "registration_mode": challenge.registration_mode,
            })
        super().__init__(*args, **kwargs)
        self.challenge = challenge
        if challenge is not None:
            self.fields["slug"].disabled = True

    def clean_registration_mode(self) -> str:
        # Left out (an older form, a script): the challenge keeps its mode; a new one is open.
        chosen = self.cleaned_data.get("registration_mode")
        return chosen or (self.challenge.registration_mode if self.challenge else Challenge.RegistrationMode.OPEN)

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if self.challenge is None and Challenge.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A challenge with this slug exists already.")
        return slug


def _profile_choices() -> list[tuple[str, str]]:
    return [(name, f"{name}: {profile.formula()}") for name, profile in PRESETS.items()]


class PhaseForm(forms.Form):
    slug = forms.SlugField(max_length=50)
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Phase.Kind.choices)
    order = forms.IntegerField(min_value=0, initial=0)
    opens_at = forms.DateTimeField(widget=_datetime_widget(), help_text="UTC")
    closes_at = forms.DateTimeField(widget=_datetime_widget(), required=False, help_text="UTC; empty: never")
    max_per_day = forms.IntegerField(min_value=1, initial=10, label="Submissions per day")
    max_total = forms.IntegerField(min_value=1, initial=100, label="Submissions in total")
    max_running = forms.IntegerField(min_value=1, initial=2, label="Running at once")
    max_archive_mb = forms.IntegerField(min_value=1, max_value=1024 * 1024, initial=2048,
                                       label="Largest archive (MiB)")
    scoring_profile = forms.ChoiceField(choices=_profile_choices, initial="ntire2025-no-qalign")
    shown_metrics = forms.MultipleChoiceField(
        choices=[(m, METRIC_LABELS.get(m, m)) for m in ALL_METRICS], required=False,
        widget=forms.CheckboxSelectMultiple, help_text="Leaderboard columns; none ticked: all of the profile's",
    )
    visibility = forms.ChoiceField(choices=Phase.Visibility.choices, initial=Phase.Visibility.PUBLIC)
    selection = forms.ChoiceField(choices=Phase.Selection.choices, initial=Phase.Selection.BEST,
                                  label="Submission that counts")

    def __init__(self, *args: Any, challenge: Challenge, phase: Phase | None = None, **kwargs: Any) -> None:
        if phase is not None:
            kwargs.setdefault("initial", {
                "slug": phase.slug, "name": phase.name, "kind": phase.kind, "order": phase.order,
                "opens_at": phase.opens_at, "closes_at": phase.closes_at, "max_per_day": phase.max_per_day,
                "max_total": phase.max_total, "max_running": phase.max_running,
                "max_archive_mb": max(1, phase.max_archive_bytes // MIB),
                "scoring_profile": phase.scoring_profile, "shown_metrics": list(phase.shown_metrics or []),
                "visibility": phase.visibility, "selection": phase.selection,
            })
        super().__init__(*args, **kwargs)
        self.challenge, self.phase = challenge, phase
        if phase is not None:
            self.fields["slug"].disabled = True  # addresses and the CLI use it

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if self.phase is None and Phase.objects.filter(challenge=self.challenge, slug=slug).exists():
            raise forms.ValidationError("This challenge has a phase with this slug already.")
        return slug

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        opens, closes = data.get("opens_at"), data.get("closes_at")
        if opens and closes and closes <= opens:
            self.add_error("closes_at", "The phase must close after it opens.")
        profile = PRESETS.get(data.get("scoring_profile", ""))
        if profile is not None:
            extra = [m for m in data.get("shown_metrics", []) if m not in profile.metrics]
            if extra:
                self.add_error("shown_metrics", f"Not computed by {profile.name}: {', '.join(extra)}.")
        return data

    def phase_fields(self) -> dict[str, Any]:
        """The cleaned values as Phase fields."""
        data = dict(self.cleaned_data)
        data["max_archive_bytes"] = data.pop("max_archive_mb") * MIB
        profile = PRESETS[data["scoring_profile"]]
        data["shown_metrics"] = [m for m in profile.metrics if m in data.get("shown_metrics", [])]
        return data


def parse_thresholds(text: str) -> dict[str, float]:
    """``Dataset=0.45`` lines (or commas) -> {dataset: threshold}."""
    thresholds: dict[str, float] = {}
    for raw in text.replace(",", "\n").splitlines():
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not name.strip() or not 0 <= number <= 1:
            raise forms.ValidationError(f"{line!r}: write Dataset=threshold with a threshold between 0 and 1.")
        thresholds[name.strip()] = number
    return thresholds


class InputSetForm(forms.Form):
    archive = forms.FileField(label="Input images (zip of <Dataset>/<stem>.png)")
    landmarks = forms.FileField(
        label="Landmarks CSV (optional)", required=False,
        help_text="val_face.csv layout. Inputs it does not list get their landmarks from RetinaFace on a worker;"
                  " `python -m scoring landmarks` writes the CSV on your own machine (a GPU's, say).",
    )
    thresholds = forms.CharField(
        required=False, label="Identity thresholds of other datasets",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "MyDataset=0.45"}),
        help_text="Only for datasets the scoring profile does not know.",
    )

    def clean_thresholds(self) -> dict[str, float]:
        return parse_thresholds(self.cleaned_data.get("thresholds") or "")


class BaselineForm(forms.Form):
    name = forms.CharField(max_length=100, initial="CodeFormer baseline",
                           help_text="Shown on the leaderboard as a baseline row")
    archive = forms.FileField(label="Restored images (zip)")
    description = forms.CharField(max_length=300, required=False)


class ExtraFileForm(forms.Form):
    title = forms.CharField(max_length=200, required=False, help_text="What participants see, e.g. Factsheet template")
    file = forms.FileField()


class RerunForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False, initial="New scoring weights.")


class EmailForm(forms.Form):
    subject = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}))


def _next_year(text: str) -> str:
    """``ntire2025-demo`` -> ``ntire2026-demo``: every four-digit year one on."""
    return re.sub(r"(?<!\d)(19|20)(\d\d)(?!\d)", lambda m: str(int(m.group(0)) + 1), text)


class BundleImportForm(forms.Form):
    bundle = forms.FileField(label="Challenge bundle (zip)", help_text="From 'Download bundle' or"
                                                                      " `manage.py challenge export`")
    slug = forms.SlugField(max_length=50, help_text="The new challenge's address: /c/SLUG/")
    title = forms.CharField(max_length=200, required=False, help_text="Empty: the bundle's")
    start = forms.DateTimeField(widget=_datetime_widget(), help_text="UTC; when its first phase opens")

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Challenge.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A challenge with this slug exists already.")
        return slug


class NewEditionForm(forms.Form):
    """Next year's copy of a challenge: its slug, title and start, and each phase's profile."""

    slug = forms.SlugField(max_length=50, help_text="The new challenge's address: /c/SLUG/")
    title = forms.CharField(max_length=200)
    start = forms.DateTimeField(widget=_datetime_widget(), help_text="UTC; when its first phase opens")

    def __init__(self, *args: Any, challenge: Challenge, **kwargs: Any) -> None:
        phases = list(challenge.phases.order_by("order", "id"))
        first = min((p.opens_at for p in phases), default=challenge.created_at)
        initial = {"slug": _next_year(challenge.slug), "title": _next_year(challenge.title),
                   "start": first.replace(year=first.year + 1, day=min(first.day, 28))}
        for phase in phases:
            initial[f"profile_{phase.slug}"] = NEXT_EDITION.get(phase.scoring_profile, phase.scoring_profile)
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.phases = phases
        for phase in phases:
            self.fields[f"profile_{phase.slug}"] = forms.ChoiceField(
                choices=_profile_choices, label=f"Profile of {phase.name}",
                help_text=f"now {phase.scoring_profile}")

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Challenge.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A challenge with this slug exists already.")
        return slug

    def profiles(self) -> dict[str, str]:
        return {phase.slug: self.cleaned_data[f"profile_{phase.slug}"] for phase in self.phases}


class PageForm(forms.Form):
    """One Markdown page of the public challenge page."""

    kind = forms.ChoiceField(choices=ChallengePage.Kind.choices)
    title = forms.CharField(max_length=100, required=False, help_text="Extra pages need one; the others have theirs.")
    order = forms.IntegerField(min_value=0, max_value=1000, required=False, help_text="Tabs are shown in this order.")
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 18}), required=False, label="Markdown",
                           help_text="Markdown (tables too); HTML is sanitised: no script, no event handler, no "
                                     "javascript: link. The Evaluation page adds each phase's formula and "
                                     "thresholds itself. Changing the Terms asks everyone to accept them again.")

    def __init__(self, *args: Any, page: ChallengePage | None = None, **kwargs: Any) -> None:
        if page is not None:
            kwargs.setdefault("initial", {"kind": page.kind, "title": page.title, "order": page.order,
                                          "body": page.body})
        super().__init__(*args, **kwargs)
        if page is not None:
            self.fields["kind"].disabled = True


class RegistrationDecisionForm(forms.Form):
    registrations = forms.TypedMultipleChoiceField(coerce=int, choices=(), label="Requests")
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")])
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000,
                              help_text="Sent in the email to each participant (optional).")

    def __init__(self, *args: Any, choices=(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["registrations"].choices = list(choices)
