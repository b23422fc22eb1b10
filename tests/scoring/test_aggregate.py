"""scoring.aggregate: per-dataset and overall means, identity failures, the weighted total."""

from __future__ import annotations

import math
import random

import pytest

from scoring.aggregate import Aggregate, aggregate, dataset_order, weighted_terms, weighted_total
from scoring.profile import (
    NTIRE2025_DATASET_SIZES,
    NTIRE2025_THRESHOLDS,
    MetricTerm,
    ScoringProfile,
    get_profile,
)
from scoring.results import ImageResult

NTIRE = get_profile("ntire2025")


def image(
    dataset: str = "CelebA",
    stem: str = "0001",
    sim: float = 0.9,
    threshold: float | None = None,
    **metrics: float,
) -> ImageResult:
    values = {"niqe": 4.0, "clipiqa": 0.8, "maniqa": 0.6, "musiq": 70.0, "qalign": 4.0}
    values.update(metrics)
    if threshold is None:
        threshold = NTIRE2025_THRESHOLDS.get(dataset, 0.5)
    return ImageResult(dataset, stem, values, id_similarity=sim, id_threshold=threshold)


def test_weighted_terms_follow_the_report_formula() -> None:
    overall = {"niqe": 4.0, "clipiqa": 0.9, "maniqa": 0.7, "musiq": 75.0, "qalign": 4.5, "fid": 60.0}
    terms = weighted_terms(NTIRE, overall)
    assert list(terms) == ["clipiqa", "maniqa", "musiq", "qalign", "niqe", "fid"]
    assert terms == pytest.approx(
        {"clipiqa": 0.9, "maniqa": 0.7, "musiq": 0.75, "qalign": 0.9, "niqe": 0.6, "fid": 0.4}
    )
    assert weighted_total(terms) == pytest.approx(0.9 + 0.7 + 0.75 + 0.9 + 0.6 + 0.4)


def test_lower_is_better_terms_never_go_negative() -> None:
    overall = {"niqe": 12.5, "clipiqa": 0.5, "maniqa": 0.5, "musiq": 50.0, "qalign": 2.5, "fid": 140.0}
    terms = weighted_terms(NTIRE, overall)
    assert terms["niqe"] == 0.0
    assert terms["fid"] == 0.0
    assert weighted_total(terms) == pytest.approx(0.5 + 0.5 + 0.5 + 0.5)


def test_weighted_terms_name_missing_metrics() -> None:
    with pytest.raises(ValueError, match="fid"):
        weighted_terms(NTIRE, {"niqe": 4.0, "clipiqa": 0.9, "maniqa": 0.7, "musiq": 75.0, "qalign": 4.5})


def test_total_does_not_depend_on_term_order() -> None:
    terms = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 1e-17}
    assert weighted_total(terms) == weighted_total(dict(reversed(list(terms.items()))))


def test_per_dataset_and_overall_means() -> None:
    images = [
        image("CelebA", "a", 0.8, niqe=4.0, clipiqa=0.5),
        image("CelebA", "b", 0.7, niqe=6.0, clipiqa=0.7),
        image("Wider-Test", "c", 0.2, niqe=8.0, clipiqa=0.9),  # below 0.3: failed
    ]
    result = aggregate(NTIRE, images, fid_overall=50.0, fid_per_dataset={"CelebA": 40.0})
    assert isinstance(result, Aggregate)
    celeba, wider = result.datasets
    assert (celeba.dataset, celeba.image_count, celeba.failed_count) == ("CelebA", 2, 0)
    assert celeba.metrics["niqe"] == pytest.approx(5.0)
    assert celeba.metrics["clipiqa"] == pytest.approx(0.6)
    assert celeba.metrics["fid"] == 40.0
    assert celeba.id_similarity == pytest.approx(0.75)
    assert (wider.dataset, wider.image_count, wider.failed_count) == ("Wider-Test", 1, 1)
    assert "fid" not in wider.metrics

    # Overall means are over all images, not over dataset means.
    assert result.overall["niqe"] == pytest.approx(6.0)
    assert result.overall["clipiqa"] == pytest.approx(0.7)
    assert result.overall["fid"] == 50.0
    assert result.id_similarity == pytest.approx((0.8 + 0.7 + 0.2) / 3)
    assert result.failed_count == 1
    assert result.valid
    assert result.terms == weighted_terms(NTIRE, result.overall)
    assert result.total == weighted_total(result.terms)


def test_overall_equals_eval_py_weighted_mean_when_complete() -> None:
    rng = random.Random(7)
    images = [
        image(name, f"{name}-{i}", rng.random(), niqe=rng.uniform(2, 9), musiq=rng.uniform(40, 80))
        for name, size in NTIRE2025_DATASET_SIZES.items()
        for i in range(size)
    ]
    result = aggregate(NTIRE, images, fid_overall=55.0, fid_per_dataset=None)
    count = sum(NTIRE2025_DATASET_SIZES.values())
    by_name = {d.dataset: d for d in result.datasets}
    for metric in ("niqe", "musiq"):
        # eval.py: sum(mean of dataset * dataset size) / 450
        weighted = sum(by_name[n].metrics[metric] * s for n, s in NTIRE2025_DATASET_SIZES.items()) / count
        assert result.overall[metric] == pytest.approx(weighted, rel=1e-12)


def test_means_do_not_depend_on_image_order() -> None:
    rng = random.Random(3)
    images = [image("CelebA", str(i), 0.9, musiq=rng.uniform(0, 100) * 1.1) for i in range(97)]
    first = aggregate(NTIRE, images, 50.0, None)
    rng.shuffle(images)
    second = aggregate(NTIRE, images, 50.0, None)
    assert first.overall == second.overall
    assert first.total == second.total


def test_dataset_order_known_first_then_alphabetical() -> None:
    names = ["Zeta", "Wider-Test", "alpha", "CelebA", "Beta", "LFW-Test", "CelebA"]
    assert dataset_order(names) == ["CelebA", "LFW-Test", "Wider-Test", "Beta", "Zeta", "alpha"]
    profile = ScoringProfile("custom", (MetricTerm("clipiqa"),), identity_thresholds={})
    images = [image(n, n, 0.9, threshold=0.5) for n in ("Zeta", "Wider-Test", "Beta", "CelebChild-Test")]
    result = aggregate(profile, images, None, None)
    assert [d.dataset for d in result.datasets] == ["CelebChild-Test", "Wider-Test", "Beta", "Zeta"]


@pytest.mark.parametrize(("failures", "valid"), [(0, True), (10, True), (11, False), (40, False)])
def test_at_most_ten_failed_images(failures: int, valid: bool) -> None:
    images = [image("LFW-Test", str(i), 0.1 if i < failures else 0.9) for i in range(50)]
    result = aggregate(NTIRE, images, 50.0, None)
    assert result.failed_count == failures
    assert result.valid is valid


def test_similarity_at_the_threshold_passes_just_below_fails() -> None:
    at = image("CelebA", "at", sim=0.5)
    below = image("CelebA", "below", sim=math.nextafter(0.5, 0.0))
    assert not at.id_failed
    assert below.id_failed
    result = aggregate(NTIRE, [at, below], 50.0, None)
    assert result.failed_count == 1
    assert result.datasets[0].failed_count == 1


def test_failures_counted_against_each_datasets_threshold() -> None:
    # 0.45 passes Wider-Test (0.3) but fails LFW-Test (0.6) and CelebA (0.5).
    images = [image(n, n, 0.45) for n in ("Wider-Test", "LFW-Test", "CelebA", "WebPhoto-Test")]
    result = aggregate(NTIRE, images, 50.0, None)
    assert {d.dataset: d.failed_count for d in result.datasets} == {
        "CelebA": 1,
        "LFW-Test": 1,
        "WebPhoto-Test": 0,
        "Wider-Test": 0,
    }
    assert result.failed_count == 2


def test_profile_without_fid_or_qalign() -> None:
    profile = get_profile("ntire2025-dev")
    images = [image("CelebA", "a", 0.9, clipiqa=0.5, musiq=60.0), image("CelebA", "b", 0.9, clipiqa=0.7)]
    result = aggregate(profile, images, None, None)
    assert set(result.overall) == {"clipiqa", "musiq"}
    assert result.total == pytest.approx(0.6 + 0.65)


def test_max_failed_comes_from_the_profile() -> None:
    strict = ScoringProfile("strict", NTIRE.terms, max_failed_images=0)
    result = aggregate(strict, [image("CelebA", "a", 0.1)], 50.0, None)
    assert not result.valid


def test_bad_inputs_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="no image results"):
        aggregate(NTIRE, [], 50.0, None)
    with pytest.raises(ValueError, match="FID"):
        aggregate(NTIRE, [image()], None, None)
    incomplete = ImageResult("CelebA", "x", {"niqe": 4.0}, 0.9, 0.5)
    with pytest.raises(ValueError, match=r"CelebA/x\.png.*clipiqa"):
        aggregate(NTIRE, [incomplete], 50.0, None)
