import numpy as np
from django.conf import settings
from django.db import models


class Submission(models.Model):
    """A team's archive for a phase. Its state changes only in submissions/transitions.py."""

    class State(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        VALIDATING = "validating", "Validating"
        SCORING = "scoring", "Scoring"
        SCORED = "scored", "Scored"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINAL_STATES = (State.SCORED, State.REJECTED, State.FAILED, State.CANCELLED)
    ACTIVE_STATES = (State.SUBMITTED, State.VALIDATING, State.SCORING)

    phase = models.ForeignKey("competitions.Phase", on_delete=models.CASCADE, related_name="submissions")
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="submissions")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(max_length=300, blank=True)
    archive = models.FileField(upload_to="submissions/%Y/%m/", max_length=300)
    archive_size = models.BigIntegerField(default=0)
    archive_sha256 = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.SUBMITTED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)  # last time the task was sent to the broker
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # False for runs that failed through no fault of the team: they do not use up the quota.
    counts_toward_quota = models.BooleanField(default=True)
    is_selected = models.BooleanField(default=False)
    factsheet = models.FileField(upload_to="factsheets/%Y/", blank=True, max_length=300)
    code_url = models.URLField(blank=True)
    verified = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["phase", "team", "created_at"])]

    def __str__(self) -> str:
        return f"submission {self.pk} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class SubmissionEvent(models.Model):
    """The submission's log, as the team reads it."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=12)
    message = models.TextField()

    class Meta:
        ordering = ["at", "id"]


class SubmissionResult(models.Model):
    submission = models.OneToOneField(Submission, on_delete=models.CASCADE, related_name="result")
    total = models.FloatField(db_index=True)
    failed_count = models.PositiveIntegerField()
    valid = models.BooleanField()
    id_similarity = models.FloatField()
    metrics = models.JSONField()  # overall means, plus "fid"
    terms = models.JSONField()  # each metric's contribution to the total
    profile = models.JSONField()
    weights = models.JSONField()  # file -> sha256
    official_weights = models.BooleanField()
    versions = models.JSONField()
    device = models.CharField(max_length=40)
    timings = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)


class DatasetScore(models.Model):
    result = models.ForeignKey(SubmissionResult, on_delete=models.CASCADE, related_name="datasets")
    dataset = models.CharField(max_length=100)
    image_count = models.PositiveIntegerField()
    metrics = models.JSONField()
    id_similarity = models.FloatField()
    failed_count = models.PositiveIntegerField()

    class Meta:
        ordering = ["dataset"]
        constraints = [models.UniqueConstraint(fields=["result", "dataset"], name="one_row_per_dataset")]


class ImageScore(models.Model):
    result = models.ForeignKey(SubmissionResult, on_delete=models.CASCADE, related_name="images")
    dataset = models.CharField(max_length=100)
    stem = models.CharField(max_length=200)
    metrics = models.JSONField()
    id_similarity = models.FloatField()
    id_threshold = models.FloatField()
    id_failed = models.BooleanField()

    class Meta:
        ordering = ["dataset", "stem"]


class PendingUpload(models.Model):
    """A direct-to-S3 upload in progress: the browser or CLI sends the parts, then calls finish."""

    phase = models.ForeignKey("competitions.Phase", on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=300, unique=True)
    s3_upload_id = models.CharField(max_length=300)
    size = models.BigIntegerField()
    part_size = models.BigIntegerField()
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submission = models.OneToOneField(Submission, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")


class FidFeatures(models.Model):
    """The FID Inception features of a result's images, from which the rank-stability bootstrap recomputes FID
    for resampled image sets (``scoring.fid.ResampledFID``).

    float32 as the scorer computed them (little-endian, one row per image in ``images``' order): 8 KiB per
    2048-d image, 3.6 MiB for 450. float16 would halve that but move the recomputed FID away from the board's
    (docs/rank-stability.md), so the bootstrap could no longer find the board's totals on the full test set."""

    result = models.OneToOneField(SubmissionResult, on_delete=models.CASCADE, primary_key=True,
                                  related_name="fid_features")
    images = models.JSONField()  # ["<dataset>/<stem>.png", ...]: the rows' order
    dim = models.PositiveIntegerField()
    data = models.BinaryField()

    DTYPE = "<f4"

    def array(self):
        return np.frombuffer(bytes(self.data), dtype=self.DTYPE).reshape(len(self.images), self.dim)
