from django.conf import settings
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


class RankStability(models.Model):
    """A rank-stability analysis (``scoring.rank_stability``) of a phase's board, with the board it was computed
    from: ``board`` is ``leaderboard.selectors.board_version`` at the time, so an analysis is shown as current only
    while the board still is that one."""

    phase = models.ForeignKey("competitions.Phase", on_delete=models.CASCADE, related_name="+")
    board = models.CharField(max_length=100)
    resamples = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    data = models.JSONField()  # RankStability.to_dict()
    seconds = models.FloatField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["phase", "board", "resamples", "seed"],
                                               name="one_analysis_per_board_and_draws")]
        indexes = [models.Index(fields=["phase", "board", "-created_at"])]

    def __str__(self) -> str:
        return f"rank stability of phase {self.phase_id}, board {self.board}"
