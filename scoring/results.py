"""What a scoring run produces: per image, per dataset, overall, and the weighted total."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ImageResult:
    dataset: str
    stem: str
    metrics: dict[str, float]  # IQA metrics of the restored image, keyed by metric name
    id_similarity: float
    id_threshold: float

    @property
    def id_failed(self) -> bool:
        # eval.py counts an image as failed when its similarity is strictly below the threshold.
        return self.id_similarity < self.id_threshold

    @property
    def relpath(self) -> str:
        return f"{self.dataset}/{self.stem}.png"


@dataclass
class DatasetResult:
    dataset: str
    image_count: int
    metrics: dict[str, float]  # means over the dataset's images; "fid" over its images alone
    id_similarity: float
    failed_count: int


@dataclass
class ScoreReport:
    profile: dict[str, Any]
    images: list[ImageResult]
    datasets: list[DatasetResult]
    overall: dict[str, float]  # means over all images, plus "fid" over all images at once
    id_similarity: float
    failed_count: int
    terms: dict[str, float]  # each metric's contribution to the total
    total: float
    valid: bool  # failed_count <= the profile's max_failed_images
    weights: dict[str, str]  # weight file name -> sha256 actually used
    official_weights: bool
    versions: dict[str, str]  # scoring.provenance: library versions, CPU, SIMD level, BLAS, GPU
    device: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for image, row in zip(self.images, data["images"], strict=True):
            row["id_failed"] = image.id_failed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreReport:
        values = dict(data)
        values["images"] = [
            ImageResult(**{k: v for k, v in row.items() if k != "id_failed"}) for row in data["images"]
        ]
        values["datasets"] = [DatasetResult(**row) for row in data["datasets"]]
        return cls(**values)
