"""Score a folder of restored images against a phase's input set.

The worker, the command line and the tests all come through ``score_restored``.
Models are loaded once per process (``load_models``) and reused across submissions.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scoring.aggregate import aggregate
from scoring.identity import IdentityScorer
from scoring.inputs import InputImage, Landmarks
from scoring.iqa import create_iqa_metric, score_batch
from scoring.profile import ScoringProfile
from scoring.provenance import provenance
from scoring.results import ImageResult, ScoreReport
from scoring.weights import MODEL_FILES, WeightStore

Progress = Callable[[int, int], None]


@dataclass
class ScoringModels:
    """Every model a profile needs, on one device, with the checksums of their weights."""

    device: torch.device
    identity: IdentityScorer
    iqa: dict[str, torch.nn.Module]
    fid: object | None  # scoring.fid.FIDScorer
    weights: dict[str, str]
    official: bool
    load_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


_loaded: dict[tuple[str, str, str], ScoringModels] = {}
_load_lock = threading.Lock()


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} asked for, but no CUDA device is available")
    return torch.device(device)


def load_models(weights_dir: Path | str, profile: ScoringProfile, device: str | None = None) -> ScoringModels:
    """Load (or return the already loaded) models for ``profile`` from ``weights_dir``."""
    dev = resolve_device(device)
    key = (str(Path(weights_dir).resolve()), str(dev), repr(sorted(profile.metrics)) + repr(profile.metric_options))
    with _load_lock:
        if key in _loaded:
            return _loaded[key]
        started = time.perf_counter()
        store = WeightStore(weights_dir)
        needed = ["adaface", *profile.iqa_metrics] + (["fid"] if profile.uses_fid else [])
        weights = store.verify(needed)
        from scoring.nets.adaface import load_adaface

        identity = IdentityScorer(load_adaface(store.path(MODEL_FILES["adaface"][0]), dev), dev)
        iqa = {
            name: create_iqa_metric(name, store, dev, profile.metric_options.get(name))
            for name in profile.iqa_metrics
        }
        fid = None
        if profile.uses_fid:
            from scoring.fid import FIDScorer

            network, reference = MODEL_FILES["fid"]
            fid = FIDScorer.from_files(store.path(network), store.path(reference), dev, cache_dir=fid_cache_dir())
        official = all(store.is_official(name) for name in weights)
        models = ScoringModels(dev, identity, iqa, fid, weights, official, time.perf_counter() - started)
        _loaded[key] = models
        return models


def fid_cache_dir() -> Path:
    """Where the reference statistics' factorisation is kept between processes (keyed by sha256)."""
    return Path(os.environ.get("FR_FID_CACHE", Path.home() / ".cache" / "ntire-fr" / "fid"))


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))  # a writable copy: torch.from_numpy shares its memory


def to_unit_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float in [0, 1], as torchvision's to_tensor gives pyiqa."""
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)


Chunk = tuple[list[np.ndarray], list[np.ndarray], torch.Tensor]


def read_chunk(chunk: list[InputImage], restored_dir: Path, device: torch.device) -> Chunk:
    """The inputs and restorations of one batch, decoded, and the restorations as a tensor ready
    for ``device`` (in pinned memory for a GPU, so that the copy can overlap with compute)."""
    lq = [read_rgb(image.path) for image in chunk]
    restored = [read_rgb(restored_dir / image.relpath) for image in chunk]
    batch = torch.stack([to_unit_tensor(rgb) for rgb in restored])
    if device.type == "cuda":
        batch = batch.pin_memory()
    return lq, restored, batch


class ChunkReader:
    """Hands out the batches in order; with ``prefetch``, reads batch i+1 in a thread while the
    caller scores batch i (PIL's decoder and torch's copies release the GIL). An error reading a
    batch is raised where that batch is asked for, as the plain loop would raise it."""

    def __init__(self, chunks: list[list[InputImage]], restored_dir: Path, device: torch.device,
                 prefetch: bool = True) -> None:
        self._chunks = iter(chunks)
        self._restored_dir = restored_dir
        self._device = device
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") if prefetch else None
        self._ahead: Future[Chunk] | None = None

    def __enter__(self) -> ChunkReader:
        if self._pool is not None:
            self._ahead = self._submit()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self) -> Future[Chunk] | None:
        chunk = next(self._chunks, None)
        if chunk is None or self._pool is None:
            return None
        return self._pool.submit(read_chunk, chunk, self._restored_dir, self._device)

    def next(self) -> Chunk:
        if self._pool is None:
            lq, restored, batch = read_chunk(next(self._chunks), self._restored_dir, self._device)
        else:
            assert self._ahead is not None, "more batches asked for than there are"
            current, self._ahead = self._ahead, None
            lq, restored, batch = current.result()
            self._ahead = self._submit()
        return lq, restored, batch.to(self._device, non_blocking=self._device.type == "cuda")


def score_restored(
    inputs: list[InputImage],
    landmarks: dict[str, Landmarks],
    restored_dir: Path,
    profile: ScoringProfile,
    models: ScoringModels,
    progress: Progress | None = None,
    batch_size: int = 8,
    prefetch: bool = True,
    images_per_call: Mapping[str, int] | None = None,
) -> ScoreReport:
    """Score ``restored_dir/<Dataset>/<stem>.png`` for every input; the archive check ran before.

    Images are read ``batch_size`` at a time (more when a metric takes more per call) and each metric
    scores a batch ``images_per_call[name]`` images a forward call (scoring.iqa.score_batch's default
    where absent); the scores are the same, to float32 rounding.

    With ``prefetch`` a reader thread decodes the next batch's PNGs (and, for a GPU, copies them
    to pinned memory) while the models work on the current one; the scores are the same.
    """
    timings: dict[str, float] = {"load_models": models.load_seconds}
    images: list[ImageResult] = []
    features: list[np.ndarray] = []
    per_call = dict(images_per_call or {})
    batch_size = max([batch_size, *per_call.values()])
    chunks = [inputs[start:start + batch_size] for start in range(0, len(inputs), batch_size)]
    with models.lock, ChunkReader(chunks, Path(restored_dir), models.device, prefetch) as reader:
        for chunk in chunks:
            tick = time.perf_counter()
            lq, restored, batch = reader.next()
            # With prefetching this is only the time spent waiting for the reader thread.
            timings["read"] = timings.get("read", 0.0) + time.perf_counter() - tick

            tick = time.perf_counter()
            sims = models.identity.similarities(
                [(a, b, landmarks[image.stem].points) for a, b, image in zip(lq, restored, chunk)]
            )
            timings["identity"] = timings.get("identity", 0.0) + time.perf_counter() - tick

            per_metric: dict[str, list[float]] = {}
            for name, metric in models.iqa.items():
                tick = time.perf_counter()
                per_metric[name] = score_batch(metric, batch, per_call.get(name))
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - tick
            if models.fid is not None:
                tick = time.perf_counter()
                features.append(models.fid.features(batch))  # type: ignore[attr-defined]
                timings["fid_features"] = timings.get("fid_features", 0.0) + time.perf_counter() - tick

            for offset, image in enumerate(chunk):
                images.append(
                    ImageResult(
                        dataset=image.dataset,
                        stem=image.stem,
                        metrics={name: values[offset] for name, values in per_metric.items()},
                        id_similarity=sims[offset],
                        id_threshold=profile.threshold_for(image.dataset),
                    )
                )
            if progress is not None:
                progress(len(images), len(inputs))

        fid_overall: float | None = None
        fid_per_dataset: dict[str, float] | None = None
        all_features = None
        if models.fid is not None:
            tick = time.perf_counter()
            all_features = np.concatenate(features)
            fid_overall = models.fid.fid(all_features)  # type: ignore[attr-defined]
            datasets = np.array([image.dataset for image in images])
            fid_per_dataset = {
                name: models.fid.fid(all_features[datasets == name])  # type: ignore[attr-defined]
                for name in dict.fromkeys(datasets.tolist())
                if int((datasets == name).sum()) > 1
            }
            timings["fid"] = time.perf_counter() - tick

    summary = aggregate(profile, images, fid_overall, fid_per_dataset)
    return ScoreReport(
        profile=profile.to_dict(),
        images=images,
        datasets=summary.datasets,
        overall=summary.overall,
        id_similarity=summary.id_similarity,
        failed_count=summary.failed_count,
        terms=summary.terms,
        total=summary.total,
        valid=summary.valid,
        weights=dict(models.weights),
        official_weights=models.official,
        versions=provenance(models.device),
        device=str(models.device),
        timings={k: round(v, 4) for k, v in timings.items()},
        fid_features=all_features,
    )
