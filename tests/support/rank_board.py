"""A board for the rank-stability tests, stored through the platform's own services and the worker's
``store_result``: teams with per-image scores on a few datasets and, for a profile with FID, their Inception
features (random 2048-d, float32) with the board's FID computed from them as the scorer does.

``python -m tests.support.rank_board DATABASE_URL WEIGHTS_DIR`` migrates that database, seeds the board, runs the
analysis and prints its JSON: the same analysis on another database engine (SQLite) than the suite's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

LAYOUT = {"CelebA": 7, "LFW-Test": 5, "Wider-Test": 4}
PROFILE = "ntire2025-no-qalign"
RESAMPLES = 120
SEED = 77


def reports(reference, team_count: int = 3) -> list[Any]:
    """ScoreReports as ``score_restored`` returns them, built with the scoring library's own aggregation."""
    from scoring.aggregate import aggregate
    from scoring.profile import get_profile
    from scoring.results import ImageResult, ScoreReport

    profile = get_profile(PROFILE)
    rng = np.random.default_rng(5)
    difficulty = {(d, k): rng.normal(0, 1, 4) for d, n in LAYOUT.items() for k in range(n)}
    mixing = np.random.default_rng(6).standard_normal((2048, 2048)) / np.sqrt(2048)
    out = []
    for t in range(team_count):
        images = []
        for (dataset, k), base in difficulty.items():
            noise = rng.normal(0, 0.3, 4)
            images.append(ImageResult(dataset, f"{dataset[:3].lower()}_{k:03d}", {
                "clipiqa": 0.6 + 0.05 * (base[0] + noise[0]) + 0.01 * t, "maniqa": 0.5 + 0.05 * (base[1] + noise[1]),
                "musiq": 65 + 4 * (base[2] + noise[2]), "niqe": 4.5 + 0.7 * (base[3] + noise[3])},
                0.9, profile.threshold_for(dataset)))
        features = np.maximum(rng.standard_normal((len(images), 2048)) @ mixing + 0.2 + 0.02 * t, 0)
        features = features.astype(np.float32)
        fid = reference.distance_from_features(features)
        summary = aggregate(profile, images, fid)
        out.append(ScoreReport(
            profile=profile.to_dict(), images=images, datasets=summary.datasets, overall=summary.overall,
            id_similarity=summary.id_similarity, failed_count=summary.failed_count, terms=summary.terms,
            total=summary.total, valid=summary.valid, weights={}, official_weights=False, versions={},
            device="cpu", fid_features=features))
    return out


def seed_board(reference, organizer=None) -> Any:
    """Challenge ``rank``, phase ``test`` (``ntire2025-no-qalign``, public) and three scored teams."""
    from django.contrib.auth import get_user_model

    from competitions.services import create_challenge, create_phase, register
    from submissions import pipeline
    from submissions.models import Submission
    from teams.services import create_team

    users = get_user_model()
    organizer = organizer or users.objects.create_user("rank-orga", "rank-orga@example.org", "x-Long-passw0rd!")
    challenge = create_challenge(slug="rank", title="Rank stability", organizers=[organizer])
    phase = create_phase(challenge=challenge, slug="test", name="Test", scoring_profile=PROFILE)
    for k, report in enumerate(reports(reference)):
        owner = users.objects.create_user(f"rank-team-{k}", f"rank-{k}@example.org", "x-Long-passw0rd!")
        register(user=owner, challenge=challenge, terms_version=0, full_name=f"Owner {k}", affiliation="Rank U")
        team = create_team(challenge=challenge, name=f"Team {k}", user=owner)
        submission = Submission.objects.create(phase=phase, team=team, submitted_by=owner,
                                               archive=f"submissions/rank-{k}.zip", archive_size=1,
                                               state=Submission.State.SCORING)
        assert pipeline.store_result(submission.pk, report, 1.0) == Submission.State.SCORED
    return phase


def reference_of(weights_dir: Path):
    from scoring.fid import FrechetReference
    from scoring.scorer import fid_cache_dir
    from scoring.weights import MODEL_FILES

    return FrechetReference.from_file(Path(weights_dir) / MODEL_FILES["fid"][1], cache_dir=fid_cache_dir())


def main(database_url: str, weights_dir: str) -> None:
    root = Path(__file__).resolve().parent.parent.parent
    sys.path[:0] = [str(root), str(root / "platform")]
    # The analysis is computed here; the task the board's changes schedule goes to an in-process broker.
    os.environ.update(DATABASE_URL=database_url, FR_WEIGHTS_DIR=weights_dir, CELERY_BROKER_URL="memory://",
                      DJANGO_SETTINGS_MODULE="frplatform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from leaderboard.models import RankStability
    from leaderboard.services import compute_rank_stability

    phase = seed_board(reference_of(Path(weights_dir)))
    assert compute_rank_stability(phase.pk, resamples=RESAMPLES, seed=SEED) == "stored"
    print(json.dumps(RankStability.objects.get(phase=phase).data))


if __name__ == "__main__":
    main(*sys.argv[1:3])
