"""The scoring profiles: NTIRE 2026's thresholds, a synthetic board ranked as 2026's eval.py would, and the
README's profile table kept equal to the profile objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scoring.aggregate import aggregate
from scoring.profile import NTIRE2025_DATASET_SIZES, PRESETS, ScoringProfile, get_profile, profiles_markdown
from scoring.ranking import ScoredEntry, rank_entries
from scoring.results import ImageResult

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_ntire2026_thresholds_are_those_of_its_eval_py():
    for name in ("ntire2026", "ntire2026-no-qalign", "ntire2026-dev"):
        assert get_profile(name).identity_thresholds == {
            "CelebA": 0.5, "LFW-Test": 0.6, "CelebChild-Test": 0.6, "WebPhoto-Test": 0.25, "Wider-Test": 0.2}
        assert get_profile(name).max_failed_images == 10
    # Same metrics and total as the matching 2025 profile.
    for year25, year26 in (("ntire2025", "ntire2026"), ("ntire2025-no-qalign", "ntire2026-no-qalign"),
                           ("ntire2025-dev", "ntire2026-dev")):
        assert get_profile(year25).terms == get_profile(year26).terms


def _images(profile: ScoringProfile, wider_similarity: float, wider_low: int, quality: float) -> list[ImageResult]:
    """A full 450-image board entry: every face keeps its identity (0.9) except ``wider_low`` Wider-Test
    faces at ``wider_similarity``; IQA values scale with ``quality``."""
    images = []
    for dataset, count in NTIRE2025_DATASET_SIZES.items():
        for index in range(count):
            low = dataset == "Wider-Test" and index < wider_low
            metrics = {"clipiqa": 0.6 * quality, "maniqa": 0.5 * quality, "musiq": 70.0 * quality,
                       "qalign": 4.0 * quality, "niqe": 4.0 / quality}
            images.append(ImageResult(dataset, f"{dataset[:4].lower()}_{index:03d}", metrics,
                                      wider_similarity if low else 0.9, profile.threshold_for(dataset)))
    return images


def _board(profile: ScoringProfile) -> tuple[dict[str, float], dict[str, int], list]:
    entries = {"Alpha": _images(profile, 0.21, 11, 1.0), "Beta": _images(profile, 0.9, 0, 0.9),
               "Gamma": _images(profile, 0.2, 3, 0.8)}
    results = {team: aggregate(profile, images, fid_overall=30.0) for team, images in entries.items()}
    ranked = rank_entries([ScoredEntry(team, r.total, r.failed_count) for team, r in results.items()],
                          max_failed=profile.max_failed_images)
    return ({t: r.total for t, r in results.items()}, {t: r.failed_count for t, r in results.items()},
            [(e.team, e.rank) for e in ranked])


def test_an_identity_of_0_21_on_wider_test_passes_under_2026_and_fails_under_2025():
    one = {name: aggregate(get_profile(name), _images(get_profile(name), 0.21, 1, 1.0), fid_overall=30.0)
           for name in ("ntire2025", "ntire2026")}
    assert one["ntire2025"].failed_count == 1
    assert one["ntire2026"].failed_count == 0
    assert one["ntire2025"].total == one["ntire2026"].total  # the thresholds change who fails, not totals

    totals25, failed25, ranks25 = _board(get_profile("ntire2025"))
    totals26, failed26, ranks26 = _board(get_profile("ntire2026"))
    assert totals25 == totals26
    # Alpha: eleven Wider-Test faces at 0.21 fail in 2025 (more than 10: not ranked), none in 2026.
    # Gamma: three at exactly 0.2: below 2025's 0.3, not strictly below 2026's 0.2.
    assert failed25 == {"Alpha": 11, "Beta": 0, "Gamma": 3}
    assert failed26 == {"Alpha": 0, "Beta": 0, "Gamma": 0}
    assert ranks25 == [("Beta", 1), ("Gamma", 2), ("Alpha", None)]
    assert ranks26 == [("Alpha", 1), ("Beta", 2), ("Gamma", 3)]


def test_every_profile_round_trips_through_its_snapshot():
    for profile in PRESETS.values():
        assert ScoringProfile.from_dict(profile.to_dict()) == profile


def test_the_readme_profile_table_is_the_profiles_own():
    readme = (REPO_ROOT / "README.md").read_text()
    start, end = "<!-- profiles:start -->\n", "<!-- profiles:end -->"
    assert start in readme and end in readme, "README.md lost its profile table markers"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == profiles_markdown(), (
        "README.md's profile table differs from scoring/profile.py; paste `python -m scoring profiles --markdown`")
    for name in PRESETS:
        assert f"| `{name}` |" in table


def test_the_profiles_command_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "scoring", "profiles", "--markdown"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert out == profiles_markdown()
    assert "| `ntire2026` |" in out and "| 0.25 | 0.2 |" in out
