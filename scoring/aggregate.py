"""From per-image results to per-dataset means, overall means and the weighted total.

eval.py averages each dataset, then takes a count-weighted mean of the dataset means with
NTIRE's fixed dataset sizes; for a complete submission that is the plain mean over all
images, which is what this module computes, so partial or custom input sets still average
correctly.  Means use ``math.fsum`` so they do not depend on the order images arrive in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scoring.profile import NTIRE2025_DATASET_SIZES, ScoringProfile
from scoring.results import DatasetResult, ImageResult


@dataclass
class Aggregate:
    datasets: list[DatasetResult]
    overall: dict[str, float]  # IQA means over all images, plus "fid" when computed
    id_similarity: float  # mean identity similarity over all images
    failed_count: int  # images strictly below their dataset's identity threshold
    terms: dict[str, float]  # each profile term's contribution, keyed by metric
    total: float
    valid: bool  # failed_count <= profile.max_failed_images


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    if not items:
        return math.nan
    return math.fsum(items) / len(items)


def dataset_order(names: Iterable[str]) -> list[str]:
    """NTIRE's datasets in the report's order first, then any others alphabetically."""
    known = list(NTIRE2025_DATASET_SIZES)
    unique = set(names)
    return [n for n in known if n in unique] + sorted(unique.difference(known))


def weighted_terms(profile: ScoringProfile, overall: Mapping[str, float]) -> dict[str, float]:
    """Each profile term's contribution to the total, in the profile's term order."""
    missing = [term.metric for term in profile.terms if term.metric not in overall]
    if missing:
        raise ValueError(f"profile {profile.name!r} needs overall values for: {', '.join(missing)}")
    return {term.metric: term.contribution(float(overall[term.metric])) for term in profile.terms}


def weighted_total(terms: Mapping[str, float]) -> float:
    # fsum: the total must not change with the order the profile lists its terms in.
    return math.fsum(terms.values())


def aggregate(
    profile: ScoringProfile,
    images: list[ImageResult],
    fid_overall: float | None,
    fid_per_dataset: Mapping[str, float] | None = None,
) -> Aggregate:
    """Average ``images`` per dataset and overall and apply the profile's formula.

    ``fid_overall`` is FID over all restored images at once (required when the profile has
    an FID term); ``fid_per_dataset`` optionally adds each dataset's own FID to its row.
    """
    if not images:
        raise ValueError("no image results to aggregate")
    metrics = profile.iqa_metrics
    for image in images:
        absent = [m for m in metrics if m not in image.metrics]
        if absent:
            raise ValueError(f"{image.relpath}: missing metric values for {', '.join(absent)}")
    if profile.uses_fid and fid_overall is None:
        raise ValueError(f"profile {profile.name!r} has an FID term but no overall FID was given")

    by_dataset: dict[str, list[ImageResult]] = {}
    for image in images:
        by_dataset.setdefault(image.dataset, []).append(image)

    datasets: list[DatasetResult] = []
    for name in dataset_order(by_dataset):
        members = by_dataset[name]
        means = {m: _mean(float(i.metrics[m]) for i in members) for m in metrics}
        if fid_per_dataset is not None and name in fid_per_dataset:
            means["fid"] = float(fid_per_dataset[name])
        datasets.append(
            DatasetResult(
                dataset=name,
                image_count=len(members),
                metrics=means,
                id_similarity=_mean(float(i.id_similarity) for i in members),
                # ImageResult.id_failed holds the rule: strictly below the threshold fails.
                failed_count=sum(1 for i in members if i.id_failed),
            )
        )

    overall = {m: _mean(float(i.metrics[m]) for i in images) for m in metrics}
    if fid_overall is not None:
        overall["fid"] = float(fid_overall)
    failed = sum(d.failed_count for d in datasets)
    terms = weighted_terms(profile, overall)
    return Aggregate(
        datasets=datasets,
        overall=overall,
        id_similarity=_mean(float(i.id_similarity) for i in images),
        failed_count=failed,
        terms=terms,
        total=weighted_total(terms),
        valid=failed <= profile.max_failed_images,
    )
