from django.db import models
from django.utils import timezone


class Challenge(models.Model):
    class RegistrationMode(models.TextChoices):
        OPEN = "open", "Open: accepting the terms registers"
        APPROVAL = "approval", "Approval: the organizers approve each request"

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    max_team_size = models.PositiveIntegerField(default=5)
    organizers = models.ManyToManyField("auth.User", related_name="organized_challenges", blank=True)
    registration_mode = models.CharField(max_length=10, choices=RegistrationMode.choices,
                                         default=RegistrationMode.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class Phase(models.Model):
    class Kind(models.TextChoices):
        DEVELOPMENT = "development", "Development"
        VALIDATION = "validation", "Validation"
        TEST = "test", "Test"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public as scores come"
        TEAM = "team", "Visible to the team only"
        HIDDEN = "hidden", "Hidden until published"

    class Selection(models.TextChoices):
        BEST = "best", "Best valid submission"
        LATEST = "latest", "Latest scored submission"
        SELECTED = "selected", "The submission the team selects"

    challenge = models.ForeignKey(Challenge, on_delete=models.CASCADE, related_name="phases")
    slug = models.SlugField()
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.DEVELOPMENT)
    order = models.PositiveIntegerField(default=0)
    opens_at = models.DateTimeField(default=timezone.now)
    closes_at = models.DateTimeField(null=True, blank=True)
    max_per_day = models.PositiveIntegerField(default=10)
    max_total = models.PositiveIntegerField(default=100)
    max_running = models.PositiveIntegerField(default=2)
    max_archive_bytes = models.BigIntegerField(default=2 * 1024**3)
    scoring_profile = models.CharField(max_length=64, default="ntire2025-no-qalign")
    # The profile as it was when the phase was set up; results keep their own copy too.
    profile_snapshot = models.JSONField(default=dict)
    shown_metrics = models.JSONField(default=list, blank=True)  # empty: all metrics of the profile
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    published = models.BooleanField(default=False)
    selection = models.CharField(max_length=10, choices=Selection.choices, default=Selection.BEST)

    class Meta:
        ordering = ["challenge", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["challenge", "slug"], name="unique_phase_slug")]

    def __str__(self) -> str:
        return f"{self.challenge.slug}/{self.slug}"

    def is_open(self, at=None) -> bool:
        at = at or timezone.now()
        return self.opens_at <= at and (self.closes_at is None or at < self.closes_at)

    @staticmethod
    def open_q(at=None, prefix: str = "") -> models.Q:
        """``is_open`` as a query condition, on this model or through ``prefix`` (e.g. ``"phase__"``)."""
        at = at or timezone.now()
        return models.Q(**{f"{prefix}opens_at__lte": at}) & (
            models.Q(**{f"{prefix}closes_at__isnull": True}) | models.Q(**{f"{prefix}closes_at__gt": at}))

    @property
    def scores_public(self) -> bool:
        return self.visibility == self.Visibility.PUBLIC or (
            self.visibility == self.Visibility.HIDDEN and self.published
        )


class InputDataset(models.Model):
    """One source dataset of a phase's input set (CelebA, LFW-Test, ...)."""

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    identity_threshold = models.FloatField()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["phase", "name"], name="unique_dataset_per_phase")]

    def __str__(self) -> str:
        return self.name


class InputImage(models.Model):
    dataset = models.ForeignKey(InputDataset, on_delete=models.CASCADE, related_name="images")
    stem = models.CharField(max_length=200)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    file = models.FileField(upload_to="inputs/%Y/")
    sha256 = models.CharField(max_length=64)
    # Five points (left eye, right eye, nose, mouth corners) and the face box, 512x512 pixel coordinates.
    landmarks = models.JSONField()
    box = models.JSONField(default=list)

    class Meta:
        ordering = ["dataset__name", "stem"]
        constraints = [models.UniqueConstraint(fields=["dataset", "stem"], name="unique_stem_per_dataset")]

    @property
    def relpath(self) -> str:
        return f"{self.dataset.name}/{self.stem}.png"


class ChallengePage(models.Model):
    """One Markdown tab of the public challenge page (Overview, Evaluation, Terms, Data, or an extra page)."""

    class Kind(models.TextChoices):
        OVERVIEW = "overview", "Overview"
        EVALUATION = "evaluation", "Evaluation"
        TERMS = "terms", "Terms"
        DATA = "data", "Data"
        EXTRA = "extra", "Extra page"

    challenge = models.ForeignKey(Challenge, on_delete=models.CASCADE, related_name="pages")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.EXTRA)
    slug = models.SlugField()
    title = models.CharField(max_length=100)
    body = models.TextField(blank=True)  # Markdown, rendered and sanitised by competitions.markdown
    order = models.PositiveIntegerField(default=0)
    # The Terms page counts its versions: a registration records the one its participant accepted.
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["challenge", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["challenge", "slug"], name="unique_page_slug"),
            # One page of each fixed kind per challenge; any number of extra pages.
            models.UniqueConstraint(fields=["challenge", "kind"], condition=~models.Q(kind="extra"),
                                    name="unique_fixed_page_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.challenge.slug}/{self.slug}"

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.body.encode()).hexdigest()


class Registration(models.Model):
    """A person's request to take part in a challenge, the organizers' decision, and the terms accepted."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        REVOKED = "revoked", "Revoked"

    challenge = models.ForeignKey(Challenge, on_delete=models.CASCADE, related_name="registrations")
    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="registrations")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    message = models.TextField(blank=True)  # the organizers' note sent with their decision
    # The exact terms accepted: the Terms page's version and the sha256 of its Markdown, and when.
    terms_version = models.PositiveIntegerField(default=0)
    terms_sha256 = models.CharField(max_length=64, blank=True)
    terms_accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["challenge", "created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["challenge", "user"], name="unique_registration")]

    def __str__(self) -> str:
        return f"{self.user} in {self.challenge.slug} ({self.status})"


class PhaseFile(models.Model):
    """A file participants download from a phase's page: the input set as one zip, its landmarks CSV and the
    starting kit (built by the platform, one set per input-set version), or an extra file an organizer uploaded."""

    class Kind(models.TextChoices):
        INPUTS = "inputs", "Input set (zip)"
        LANDMARKS = "landmarks", "Landmarks (CSV)"
        STARTING_KIT = "starting_kit", "Starting kit (zip)"
        EXTRA = "extra", "Extra file"

    BUILT = (Kind.INPUTS, Kind.LANDMARKS, Kind.STARTING_KIT)

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="files")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # The input set it was built from (data_selectors.input_set_version); blank for an extra file.
    version = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200)  # the file name participants get
    title = models.CharField(max_length=200, blank=True)
    file = models.FileField(max_length=300)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["phase", "kind", "name", "id"]
        constraints = [models.UniqueConstraint(fields=["phase", "kind", "version"],
                                               condition=~models.Q(kind="extra"), name="one_built_file_per_version")]

    def __str__(self) -> str:
        return f"{self.phase}: {self.name}"


class Download(models.Model):
    """One download of a phase file: who, what, when (the file row may be gone since; kind and name stay)."""

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="downloads")
    file = models.ForeignKey(PhaseFile, on_delete=models.SET_NULL, null=True, related_name="downloads")
    kind = models.CharField(max_length=20, choices=PhaseFile.Kind.choices)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=64, blank=True)
    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="downloads")
    via = models.CharField(max_length=10, default="web")  # web or api
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["phase", "kind"])]
