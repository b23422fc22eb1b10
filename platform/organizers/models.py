"""An organizer's input set waiting for RetinaFace: its upload, kept until a worker has located every face."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class InputSetJob(models.Model):
    """One upload of a phase's input set whose inputs are not all in its landmarks CSV.

    The web request checks the archive and stores it here; ``organizers.tasks.locate_faces`` runs RetinaFace
    on the default queue, then stores the whole set, or nothing when some input has no face.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Locating faces"
        STORED = "stored", "Stored"
        FAILED = "failed", "Failed"

    FINAL_STATES = (State.STORED, State.FAILED)

    phase = models.ForeignKey("competitions.Phase", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    archive = models.FileField(upload_to="input-set-jobs/", blank=True)
    landmarks_csv = models.FileField(upload_to="input-set-jobs/", blank=True)
    thresholds = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    images = models.PositiveIntegerField(default=0)  # inputs in the archive
    from_csv = models.PositiveIntegerField(default=0)  # of which the CSV gave the landmarks
    done = models.PositiveIntegerField(default=0)  # inputs RetinaFace has looked at, of ``images - from_csv``
    error = models.TextField(blank=True)
    no_face = models.JSONField(default=list, blank=True)  # <Dataset>/<stem>.png of the inputs without a face
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"input set of {self.phase_id} ({self.state})"

    @property
    def to_locate(self) -> int:
        return self.images - self.from_csv

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES
