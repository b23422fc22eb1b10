"""Scoring profiles: which metrics a phase computes and how they add up to its total.

A profile is plain data so the platform can store a snapshot of it next to every
result (``to_dict``/``from_dict``) and a participant can reproduce a score with
``python -m scoring score --profile NAME``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Identity thresholds of the NTIRE 2025 report, section 2.2.2 (also in eval.py).
NTIRE2025_THRESHOLDS: dict[str, float] = {
    "CelebA": 0.5,
    "CelebChild-Test": 0.6,
    "LFW-Test": 0.6,
    "WebPhoto-Test": 0.3,
    "Wider-Test": 0.3,
}

# Identity thresholds NTIRE 2026 ran with: eval.py of github.com/jkwang28/NTIRE2026_RealWorld_Face_Restoration
# (arXiv 2604.10532). Wider-Test and WebPhoto-Test were lowered; that repository's README still lists the
# 2025 values, but the code is what scored the teams.
NTIRE2026_THRESHOLDS: dict[str, float] = {
    **NTIRE2025_THRESHOLDS,
    "WebPhoto-Test": 0.25,
    "Wider-Test": 0.2,
}

# Image counts per source dataset in NTIRE 2025's validation and test sets.
NTIRE2025_DATASET_SIZES: dict[str, int] = {
    "CelebA": 100,
    "CelebChild-Test": 50,
    "LFW-Test": 100,
    "WebPhoto-Test": 100,
    "Wider-Test": 100,
}

IQA_METRICS = ("niqe", "clipiqa", "maniqa", "musiq", "qalign")
ALL_METRICS = (*IQA_METRICS, "fid")
# How pages and exports name each metric, and the ones where a lower value is better.
METRIC_LABELS = {
    "niqe": "NIQE", "clipiqa": "CLIP-IQA", "maniqa": "MANIQA", "musiq": "MUSIQ", "qalign": "Q-Align", "fid": "FID",
}
LOWER_IS_BETTER = frozenset({"niqe", "fid"})


@dataclass(frozen=True)
class MetricTerm:
    """One term of the weighted total.

    Higher-is-better metrics contribute ``value / divisor``; lower-is-better ones
    contribute ``max(0, (ceiling - value) / divisor)``, as in the report's formula.
    """

    metric: str
    divisor: float = 1.0
    ceiling: float | None = None

    def linear(self, value: float) -> float:
        """The term without its clamp: what one image adds to the mean that the total is, clamp inactive."""
        if self.ceiling is None:
            return value / self.divisor
        return (self.ceiling - value) / self.divisor

    def contribution(self, value: float) -> float:
        if self.ceiling is None:
            return self.linear(value)
        return max(0.0, self.linear(value))

    def clamped(self, value: float) -> bool:
        """Whether the clamp sets this term (to 0) for ``value``."""
        return self.ceiling is not None and self.linear(value) < 0

    def describe(self) -> str:
        name = self.metric.upper()
        if self.ceiling is None:
            return name if self.divisor == 1 else f"{name}/{self.divisor:g}"
        return f"max(0, ({self.ceiling:g} - {name})/{self.divisor:g})"


@dataclass(frozen=True)
class ScoringProfile:
    name: str
    terms: tuple[MetricTerm, ...]
    identity_thresholds: dict[str, float] = field(default_factory=lambda: dict(NTIRE2025_THRESHOLDS))
    max_failed_images: int = 10
    # Options passed to pyiqa.create_metric per metric; empty means pyiqa's defaults.
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(term.metric for term in self.terms)

    @property
    def iqa_metrics(self) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if m in IQA_METRICS)

    @property
    def uses_fid(self) -> bool:
        return "fid" in self.metrics

    @property
    def needs_gpu(self) -> bool:
        # Q-Align is an 8B-parameter model: about 15 GB in fp16, GPU only.
        return "qalign" in self.metrics

    def threshold_for(self, dataset: str) -> float:
        try:
            return self.identity_thresholds[dataset]
        except KeyError:
            raise KeyError(f"profile {self.name!r} has no identity threshold for dataset {dataset!r}") from None

    def formula(self) -> str:
        return " + ".join(term.describe() for term in self.terms)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["terms"] = [asdict(term) for term in self.terms]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoringProfile:
        unknown = [t["metric"] for t in data["terms"] if t["metric"] not in ALL_METRICS]
        if unknown:
            raise ValueError(f"unknown metrics in profile: {', '.join(unknown)}")
        return cls(
            name=data["name"],
            terms=tuple(MetricTerm(**term) for term in data["terms"]),
            identity_thresholds=dict(data.get("identity_thresholds", NTIRE2025_THRESHOLDS)),
            max_failed_images=int(data.get("max_failed_images", 10)),
            metric_options={k: dict(v) for k, v in data.get("metric_options", {}).items()},
            description=data.get("description", ""),
        )


NTIRE2025_TERMS = (
    MetricTerm("clipiqa"),
    MetricTerm("maniqa"),
    MetricTerm("musiq", divisor=100),
    MetricTerm("qalign", divisor=5),
    MetricTerm("niqe", divisor=10, ceiling=10),
    MetricTerm("fid", divisor=100, ceiling=100),
)

PRESETS: dict[str, ScoringProfile] = {
    profile.name: profile
    for profile in (
        ScoringProfile(
            name="ntire2025",
            terms=NTIRE2025_TERMS,
            description="The NTIRE 2025 final score: all six metrics (Q-Align needs a GPU worker).",
        ),
        ScoringProfile(
            name="ntire2025-no-qalign",
            terms=tuple(t for t in NTIRE2025_TERMS if t.metric != "qalign"),
            description="NTIRE 2025 without the Q-Align term, as eval.py with use_qalign=False.",
        ),
        ScoringProfile(
            name="ntire2025-dev",
            terms=(MetricTerm("clipiqa"), MetricTerm("musiq", divisor=100)),
            description="Development-phase feedback: CLIP-IQA and MUSIQ only, as NTIRE's Codalab phase showed.",
        ),
        # NTIRE 2026 kept 2025's metrics, weights and total (eval.py of the 2026 repository above) and the
        # at-most-10-failed rule (enforced by the organizers, eval.py only counts); only thresholds changed.
        ScoringProfile(
            name="ntire2026",
            terms=NTIRE2025_TERMS,
            identity_thresholds=dict(NTIRE2026_THRESHOLDS),
            description="The NTIRE 2026 final score: 2025's six metrics, Wider-Test 0.2 and WebPhoto-Test 0.25.",
        ),
        ScoringProfile(
            name="ntire2026-no-qalign",
            terms=tuple(t for t in NTIRE2025_TERMS if t.metric != "qalign"),
            identity_thresholds=dict(NTIRE2026_THRESHOLDS),
            description="NTIRE 2026 without the Q-Align term, as its eval.py with use_qalign=False.",
        ),
        ScoringProfile(
            name="ntire2026-dev",
            terms=(MetricTerm("clipiqa"), MetricTerm("musiq", divisor=100)),
            identity_thresholds=dict(NTIRE2026_THRESHOLDS),
            description="Development-phase feedback under the 2026 thresholds: CLIP-IQA and MUSIQ only.",
        ),
    )
}


# Each profile's counterpart in the next edition, offered when a challenge is copied into its next year.
NEXT_EDITION: dict[str, str] = {
    "ntire2025": "ntire2026",
    "ntire2025-no-qalign": "ntire2026-no-qalign",
    "ntire2025-dev": "ntire2026-dev",
}


def get_profile(name: str) -> ScoringProfile:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown scoring profile {name!r}; known: {', '.join(sorted(PRESETS))}") from None


def profiles_markdown() -> str:
    """The README's profile table, made from PRESETS (a test keeps the README equal to it)."""
    datasets = sorted({name for profile in PRESETS.values() for name in profile.identity_thresholds})
    header = ["profile", "total", *datasets, "max failed", "what"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for profile in PRESETS.values():
        thresholds = [f"{profile.identity_thresholds[d]:g}" if d in profile.identity_thresholds else "-"
                      for d in datasets]
        row = [f"`{profile.name}`", profile.formula(), *thresholds, str(profile.max_failed_images),
               profile.description]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def evaluation_markdown(profile: ScoringProfile, heading: str) -> str:
    """How ``profile`` scores, in Markdown: the total's formula, each dataset's identity threshold and the most
    failed images a ranked team may have (the challenge's Evaluation page shows it for every phase)."""
    lines = [f"### {heading}", "", f"Scoring profile `{profile.name}`" + (f": {profile.description}"
                                                                          if profile.description else "."), "",
             "Each metric is averaged over all restored images (FID is computed over the whole set); the total "
             "combines those means:", "",
             f"    total = {profile.formula()}", "",
             "An image passes the identity test when the AdaFace cosine similarity between its restoration and "
             "its input reaches its dataset's threshold (an image strictly below it fails):", "",
             "| dataset | identity threshold |", "| --- | --- |"]
    lines += [f"| {name} | {value:g} |" for name, value in sorted(profile.identity_thresholds.items())]
    lines += ["", f"A team with more than {profile.max_failed_images} failed images is not ranked.", ""]
    return "\n".join(lines)
