"""FID as the NTIRE 2025 organizers compute it (their fid.py, from VQFR/BasicSR), but fast.

The organizers' pipeline: RGB images in [0, 1] -> normalised to [-1, 1] (mean=std=0.5) ->
pytorch-fid's FID Inception (bilinear resize to 299x299, final 2048-d average pool) for
all restored images at once -> mean and ``np.cov`` -> Fréchet distance to the FFHQ
statistics in ``inception_FFHQ_512.pth`` with BasicSR's ``calculate_fid``, i.e.
``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))`` via ``scipy.linalg.sqrtm``.

That sqrtm of a 2048x2048 product is slow on a CPU (docs/performance.md, section 2). Only its trace is
needed, and with R the symmetric square root of the reference covariance S2,
S1 S2 = (S1 R) R has the same eigenvalues as R S1 R, a symmetric PSD matrix, so
``tr(sqrtm(S1 S2)) = sum(sqrt(eigvalsh(R S1 R)))``. R depends on the reference alone and
is computed once (and cached on disk). When S1 comes from N < 2048 feature vectors,
S1 = A^T A / (N-1) with A the centred features, and the non-zero eigenvalues of
R S1 R = (A R)^T (A R) / (N-1) are those of the N x N Gram matrix (A R)(A R)^T / (N-1).

Exact zero eigenvalues come out of floating point as +-1e-15 noise, whose square roots
would add up to ~1e-5 over a thousand of them; eigenvalues below the noise floor of the
decomposition are therefore treated as zero, which is also what the Gram form gives.
Agreement with the scipy computation is ~1e-5 on FID values in the tens to hundreds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from scoring.nets.inception import FEATURE_DIM, INPUT_SIZE, FIDFeatureExtractor
from scoring.weights import sha256_of

REFERENCE_NAME = "inception_FFHQ_512.pth"
# Bump when the cached factorisation's meaning changes, so old cache files are ignored.
_CACHE_FORMAT = 1


def compute_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features, computed as BasicSR does.

    The mean keeps the features' dtype (float32 from the network) like ``np.mean`` in
    BasicSR; ``np.cov`` always works in float64.
    """
    features = _check_features(features)
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def frechet_distance_scipy(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """BasicSR's ``calculate_fid``: the reference (slow) computation with ``scipy.linalg.sqrtm``."""
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors differ in length: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape:
        raise ValueError(f"covariances differ in shape: {sigma1.shape} vs {sigma2.shape}")
    # scipy >= 1.16 deprecates disp=False; the default returns the same matrix, without the estimate.
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # The product may be (almost) singular: retry with a small ridge on both covariances.
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in sqrtm(sigma1 @ sigma2)")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def load_reference_statistics(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, cov) from a BasicSR statistics file such as ``inception_FFHQ_512.pth``.

    The file is a ``torch.save``-d dict of numpy arrays (plus ``name`` and ``size``).
    It is read with ``weights_only=True`` so that a tampered file cannot run code; the
    few numpy globals a float array pickle needs are allowed, under both the numpy 1 and 2
    module names since the official file predates numpy 2.
    """
    reconstruct = np._core.multiarray._reconstruct  # type: ignore[attr-defined]  # numpy 2's, not in its stubs
    allowed: list[Any] = [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        # numpy 2 rebuilds a dtype as an instance of its per-type class.
        *(type(np.dtype(kind)) for kind in (np.float16, np.float32, np.float64)),
    ]
    with torch.serialization.safe_globals(allowed):
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "mean" not in data or "cov" not in data:
        raise ValueError(f"{path}: expected a dict with 'mean' and 'cov'")
    mean, cov = (np.asarray(_to_numpy(data[key])) for key in ("mean", "cov"))
    if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(f"{path}: mean {mean.shape} and cov {cov.shape} do not fit together")
    return mean, cov


def _to_numpy(value: object) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _check_features(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"expected (N, D) features, got shape {features.shape}")
    if features.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors, got {features.shape[0]}")
    return features


def _sum_sqrt_eigenvalues(symmetric: np.ndarray) -> float:
    """sum(sqrt(eigenvalues)) of a symmetric PSD matrix, ignoring eigenvalues at the noise floor."""
    eigenvalues = scipy.linalg.eigh(symmetric, eigvals_only=True, check_finite=False)
    return _sum_sqrt_above_floor(eigenvalues, symmetric.shape[0])


def _sum_sqrt_above_floor(eigenvalues: np.ndarray, size: int) -> float:
    floor = max(float(eigenvalues.max()), 0.0) * size * np.finfo(np.float64).eps
    return float(np.sqrt(eigenvalues[eigenvalues > floor]).sum())


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Small eigenvalue problems one after another run fastest on one thread: a multithreaded LAPACK spends more
    time waking and spinning its threads than computing, far more so on a CPU shared with other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _symmetric_sqrt(cov: np.ndarray) -> np.ndarray:
    """The symmetric PSD square root via eigh; negative rounding-level eigenvalues count as 0."""
    eigenvalues, vectors = scipy.linalg.eigh(cov, driver="evd", check_finite=False)
    root = (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T
    return (root + root.T) / 2  # exactly symmetric, so later products stay symmetric


class FrechetReference:
    """Reference statistics with their covariance's square root precomputed.

    ``distance(mu, sigma)`` costs two 2048^3 products and one symmetric eigenvalue
    problem; ``distance_from_features`` costs one N x 2048 x 2048 product and an N x N
    eigenvalue problem, instead of scipy's sqrtm of a 2048 x 2048 product (timings:
    docs/performance.md, section 2).
    """

    def __init__(self, mean: np.ndarray, cov: np.ndarray, *, sqrt_cov: np.ndarray | None = None) -> None:
        mean = np.asarray(mean)
        cov = np.asarray(cov, dtype=np.float64)
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"mean {mean.shape} and cov {cov.shape} do not fit together")
        # The mean keeps its stored dtype so that mu1 - mu2 rounds as in BasicSR.
        self.mean = mean
        self.dim = mean.shape[0]
        self.trace_cov = float(np.trace(cov))
        if sqrt_cov is None:
            sqrt_cov = _symmetric_sqrt(cov)
        elif sqrt_cov.shape != cov.shape:
            raise ValueError(f"sqrt_cov {sqrt_cov.shape} does not match cov {cov.shape}")
        self.sqrt_cov = np.ascontiguousarray(sqrt_cov, dtype=np.float64)
        self.sha256: str | None = None  # of the statistics file, when loaded by from_file

    @classmethod
    def from_file(cls, path: str | Path, cache_dir: str | Path | None = None) -> FrechetReference:
        """Load a BasicSR statistics file; with ``cache_dir``, reuse/store the square root there.

        The cache file is named by the statistics file's sha256, so a changed reference
        can never pick up a stale factorisation; it is written atomically so concurrent
        workers may share the directory.
        """
        path = Path(path)
        mean, cov = load_reference_statistics(path)
        digest = sha256_of(path)
        sqrt_cov = None
        cache_path = None
        if cache_dir is not None:
            cache_path = Path(cache_dir) / f"fid-sqrtcov-v{_CACHE_FORMAT}-{digest}.npy"
            sqrt_cov = _load_cached(cache_path, cov.shape)
        reference = cls(mean, cov, sqrt_cov=sqrt_cov)
        reference.sha256 = digest
        if cache_path is not None and sqrt_cov is None:
            _save_atomically(cache_path, reference.sqrt_cov)
        return reference

    def _mean_term(self, mu: np.ndarray) -> float:
        if mu.shape != self.mean.shape:
            raise ValueError(f"mean has shape {mu.shape}, the reference {self.mean.shape}")
        diff = mu - self.mean
        return float(diff @ diff)

    def distance(self, mu: np.ndarray, sigma: np.ndarray) -> float:
        """FID between (mu, sigma) and the reference; equals ``frechet_distance_scipy`` to ~1e-5."""
        mu = np.asarray(mu)
        sigma = np.asarray(sigma, dtype=np.float64)
        if sigma.shape != (self.dim, self.dim):
            raise ValueError(f"covariance has shape {sigma.shape}, expected {(self.dim, self.dim)}")
        inner = self.sqrt_cov @ sigma @ self.sqrt_cov
        inner = (inner + inner.T) / 2  # remove rounding asymmetry; eigh reads one triangle only
        trace_sqrt = _sum_sqrt_eigenvalues(inner)
        return self._mean_term(mu) + float(np.trace(sigma)) + self.trace_cov - 2 * trace_sqrt

    def distance_from_features(self, features: np.ndarray) -> float:
        """FID of (N, D) features against the reference, via the smaller of the N x N / D x D forms.

        Same value as ``distance(*compute_statistics(features))`` without forming the covariance.
        """
        features = _check_features(features)
        if features.shape[1] != self.dim:
            raise ValueError(f"features have dimension {features.shape[1]}, the reference {self.dim}")
        count = features.shape[0]
        # The mean in float64 (BasicSR keeps float32): the rank-stability bootstrap recomputes this FID from the
        # stored features with resample weights (ResampledFID), and must find the board's value again to 1e-9.
        mu = np.asarray(np.mean(features, axis=0, dtype=np.float64))
        # Centre in float64 exactly as np.cov does.
        centred = features.astype(np.float64)
        centred -= centred.mean(axis=0)
        projected = centred @ self.sqrt_cov  # rows of A R
        # Same non-zero eigenvalues either way; take the smaller matrix.
        inner = projected @ projected.T if count <= self.dim else projected.T @ projected
        inner /= count - 1
        trace_sigma = float(np.einsum("ij,ij->", centred, centred)) / (count - 1)
        trace_sqrt = _sum_sqrt_eigenvalues(inner)
        return self._mean_term(mu) + trace_sigma + self.trace_cov - 2 * trace_sqrt


class ResampledFID:
    """FID of one submission's features under bootstrap resample weights, without copying features.

    A resample that draws image i ``w_i`` times has the mean ``sum(w_i f_i) / N`` and ``np.cov``'s
    covariance ``sum(w_i (f_i - mu)(f_i - mu)^T) / (N - 1)`` (N = sum(w_i)). With P the rows of
    (F - m0) R (R the reference's cached square root, m0 the plain mean) and K = P P^T, the non-zero
    eigenvalues of R S R are those of the Gram matrix ``sqrt(w_i w_j) (K_ij - u_i - u_j + s) / (N - 1)``
    over the drawn images, where u = K w / N and s = w^T K w / N^2: K is computed once per submission,
    each resample costs one eigenvalue problem of the size of its distinct images (~63% of N).
    All weights 1 give ``FrechetReference.distance_from_features`` to rounding.
    """

    def __init__(self, reference: FrechetReference, features: np.ndarray) -> None:
        features = _check_features(features)
        if features.shape[1] != reference.dim:
            raise ValueError(f"features have dimension {features.shape[1]}, the reference {reference.dim}")
        self.reference = reference
        centred = features.astype(np.float64)
        self.offset = centred.mean(axis=0)
        centred -= self.offset  # resample means stay near m0: the Gram algebra keeps its precision
        self.centred = centred
        projected = centred @ reference.sqrt_cov
        self.gram = projected @ projected.T
        self.squared_norms = np.einsum("ij,ij->i", centred, centred)
        self.mean_offset = self.offset - np.asarray(reference.mean, dtype=np.float64)

    def distances(self, weights: np.ndarray) -> np.ndarray:
        """FID for each row of ``weights`` (B, N): how often each image is drawn (each row sums to N)."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if weights.shape[1] != self.gram.shape[0]:
            raise ValueError(f"weights cover {weights.shape[1]} images, the features {self.gram.shape[0]}")
        count = weights.sum(axis=1)
        shift = (weights @ self.centred) / count[:, None]  # resample mean - m0
        diff = self.mean_offset + shift
        mean_term = np.einsum("ij,ij->i", diff, diff)
        trace_sigma = (weights @ self.squared_norms - count * np.einsum("ij,ij->i", shift, shift)) / (count - 1)
        out = np.empty(weights.shape[0])
        with _one_thread():
            for row, (w, n) in enumerate(zip(weights, count)):
                drawn = np.flatnonzero(w)
                u = (self.gram[drawn] @ w) / n
                s = float(w[drawn] @ u) / n
                inner = self.gram[np.ix_(drawn, drawn)] - u[:, None] - u[None, :] + s
                root = np.sqrt(w[drawn])
                inner *= root[:, None] * root[None, :] / (n - 1)
                eigenvalues = torch.linalg.eigvalsh(torch.from_numpy(inner)).numpy()
                trace_sqrt = _sum_sqrt_above_floor(eigenvalues, len(drawn))
                out[row] = mean_term[row] + trace_sigma[row] + self.reference.trace_cov - 2 * trace_sqrt
        return out


def _load_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # unreadable or truncated: recompute and overwrite
    if value.shape != shape or value.dtype != np.float64 or not np.isfinite(value).all():
        return None
    return value


def _save_atomically(path: Path, value: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as tmp:
            np.save(tmp, value, allow_pickle=False)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


class FIDScorer:
    """FID Inception on a device plus the FFHQ reference: images -> features -> FID."""

    def __init__(
        self,
        extractor: FIDFeatureExtractor,
        reference: FrechetReference,
        device: torch.device | str = "cpu",
    ) -> None:
        if reference.dim != FEATURE_DIM:
            raise ValueError(f"reference has dimension {reference.dim}, the Inception features {FEATURE_DIM}")
        self.device = torch.device(device)
        # channels_last runs the Inception faster on CPU (oneDNN; docs/performance.md); the
        # outputs differ from NCHW only at float32 rounding level.
        self.extractor = extractor.to(self.device).to(memory_format=torch.channels_last).eval()
        self.reference = reference

    @classmethod
    def from_files(
        cls,
        inception_path: str | Path,
        reference_path: str | Path,
        device: torch.device | str = "cpu",
        cache_dir: str | Path | None = None,
    ) -> FIDScorer:
        return cls(
            FIDFeatureExtractor.from_file(inception_path),
            FrechetReference.from_file(reference_path, cache_dir=cache_dir),
            device,
        )

    def _prepared(self, images: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[0] != 3:
                raise ValueError(f"image {index}: expected a (3, H, W) tensor, got {tuple(image.shape)}")
            x = image.to(self.device, torch.float32).unsqueeze(0)
            x = (x - 0.5) / 0.5  # BasicSR's normalize(mean=0.5, std=0.5), before the resize
            # Resizing each image here (rather than in the network) lets images of
            # different sizes share a batch; per-sample bilinear interpolation gives the
            # same values, and the network's own 299 -> 299 resize is then an identity.
            yield F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)

    def features(self, images: Iterable[torch.Tensor], batch_size: int = 16) -> np.ndarray:
        """(N, 2048) float32 features of RGB images in [0, 1], each a (3, H, W) tensor."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        chunks: list[np.ndarray] = []
        batch: list[torch.Tensor] = []
        with torch.inference_mode():
            for x in self._prepared(images):
                batch.append(x)
                if len(batch) == batch_size:
                    chunks.append(self._run(batch))
                    batch = []
            if batch:
                chunks.append(self._run(batch))
        if not chunks:
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        return np.concatenate(chunks)

    def _run(self, batch: list[torch.Tensor]) -> np.ndarray:
        x = torch.cat(batch).contiguous(memory_format=torch.channels_last)
        return self.extractor(x).float().cpu().numpy()

    def fid(self, features: np.ndarray) -> float:
        """FID of all the given features at once against the reference."""
        return self.reference.distance_from_features(features)
