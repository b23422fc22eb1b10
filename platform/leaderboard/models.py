from django.db import models


class BoardVersion(models.Model):
    """A counter per phase, raised in the same transaction as every change its leaderboard shows
    (``leaderboard.versions``). Cached boards are keyed by it, so checking that a cached board is
    current costs one primary-key lookup, whatever the number of submissions.

    A table of its own rather than a column of Phase: an organizer saving a phase form loaded before
    a result arrived would otherwise write the old number back."""

    phase = models.OneToOneField("competitions.Phase", on_delete=models.CASCADE, primary_key=True, related_name="+")
    number = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"board of phase {self.phase_id}: version {self.number}"
