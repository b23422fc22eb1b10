"""FID: the fast Fréchet distance against scipy's sqrtm, the reference cache, and the FID Inception."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.inception import InceptionA, InceptionE

from scoring import fid as fid_module
from scoring.fid import (
    FIDScorer,
    FrechetReference,
    compute_statistics,
    frechet_distance_scipy,
    load_reference_statistics,
)
from scoring.nets.inception import (
    FIDFeatureExtractor,
    FIDInceptionA,
    FIDInceptionE_1,
    FIDInceptionE_2,
    build_fid_inception,
    load_inception_state_dict,
)

DIM = 2048


def inception_like_features(count: int, dim: int, seed: int) -> np.ndarray:
    """Correlated, non-negative float32 features, like pooled ReLU activations."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(1234).standard_normal((dim, dim)) / np.sqrt(dim)
    latent = rng.standard_normal((count, dim)) @ mixing
    return np.maximum(latent + rng.uniform(0.0, 0.5, dim), 0.0).astype(np.float32)


def save_basicsr_stats(path: Path, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, cov = compute_statistics(features)
    # The layout of BasicSR's calculate_fid_stats_from_datasets.py output.
    torch.save({"name": "FFHQ", "size": 512, "mean": mean, "cov": cov}, path)
    return mean, cov


@pytest.fixture(scope="module")
def full_reference() -> tuple[np.ndarray, np.ndarray, FrechetReference]:
    mean, cov = compute_statistics(inception_like_features(3000, DIM, seed=1))
    return mean, cov, FrechetReference(mean, cov)


# --- Fréchet distance -------------------------------------------------------------------------


def test_fast_distance_matches_scipy_at_full_size(full_reference):
    # The one full-size scipy sqrtm (tens of seconds): 100 submission images, rank-deficient S1.
    ref_mean, ref_cov, reference = full_reference
    features = inception_like_features(100, DIM, seed=2)
    mu, sigma = compute_statistics(features)
    expected = frechet_distance_scipy(mu, sigma, ref_mean, ref_cov)
    assert expected > 1.0
    assert reference.distance(mu, sigma) == pytest.approx(expected, abs=1e-3)
    assert reference.distance_from_features(features) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("count", [2, 100, 450])
def test_gram_form_equals_eigen_form(full_reference, count):
    _, _, reference = full_reference
    features = inception_like_features(count, DIM, seed=10 + count)
    mu, sigma = compute_statistics(features)
    # The Gram form averages in float64 (what the rank-stability bootstrap recomputes); BasicSR's float32
    # mean moves FID by rounding only (measured 1.7e-5 on 2300 with 2 images, i.e. 7e-9 relative).
    eigen = reference.distance(features.mean(axis=0, dtype=np.float64), sigma)
    assert reference.distance_from_features(features) == pytest.approx(eigen, abs=1e-6)
    assert reference.distance_from_features(features) == pytest.approx(reference.distance(mu, sigma), rel=1e-7)


@pytest.mark.parametrize(
    ("count", "dim"),
    [(40, 64), (64, 64), (65, 64), (500, 64), (300, 256)],  # rank-deficient, borderline and full-rank S1
)
def test_fast_forms_match_scipy_small(count, dim):
    ref_mean, ref_cov = compute_statistics(inception_like_features(4 * dim, dim, seed=3))
    features = inception_like_features(count, dim, seed=4)
    mu, sigma = compute_statistics(features)
    expected = frechet_distance_scipy(mu, sigma, ref_mean, ref_cov)
    reference = FrechetReference(ref_mean, ref_cov)
    assert reference.distance(mu, sigma) == pytest.approx(expected, abs=1e-6, rel=1e-9)
    assert reference.distance_from_features(features) == pytest.approx(expected, abs=1e-6, rel=1e-9)


def test_singular_reference_covariance():
    # A reference from fewer samples than dimensions: S2 itself is singular.
    ref_mean, ref_cov = compute_statistics(inception_like_features(50, 128, seed=5))
    mu, sigma = compute_statistics(inception_like_features(80, 128, seed=6))
    expected = frechet_distance_scipy(mu, sigma, ref_mean, ref_cov)
    assert FrechetReference(ref_mean, ref_cov).distance(mu, sigma) == pytest.approx(expected, abs=1e-4)


def test_identical_statistics_give_zero():
    features = inception_like_features(1000, 256, seed=7)
    mean, cov = compute_statistics(features)
    reference = FrechetReference(mean, cov)
    assert reference.distance(mean, cov) == pytest.approx(0.0, abs=1e-8)
    assert reference.distance_from_features(features) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_scipy(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-6)


def test_mean_shift_adds_squared_norm():
    features = inception_like_features(500, 64, seed=8)
    mean, cov = compute_statistics(features)
    reference = FrechetReference(mean.astype(np.float64), cov)
    shift = np.full(64, 0.25)
    assert reference.distance(mean + shift, cov) == pytest.approx(64 * 0.25**2, abs=1e-8)


def test_compute_statistics_follows_numpy():
    features = inception_like_features(30, 16, seed=9)
    mu, sigma = compute_statistics(features)
    assert mu.dtype == np.float32  # np.mean keeps float32, as in BasicSR
    assert sigma.dtype == np.float64
    np.testing.assert_array_equal(sigma, np.cov(features, rowvar=False))
    with pytest.raises(ValueError, match="at least 2"):
        compute_statistics(features[:1])
    with pytest.raises(ValueError, match="dimension"):
        FrechetReference(mu, sigma).distance_from_features(np.zeros((5, 8), np.float32))


# --- reference files and the factorisation cache --------------------------------------------


def test_reference_from_file_caches_the_square_root(tmp_path, monkeypatch):
    stats_path = tmp_path / "inception_FFHQ_512.pth"
    mean, cov = save_basicsr_stats(stats_path, inception_like_features(300, 64, seed=11))
    loaded_mean, loaded_cov = load_reference_statistics(stats_path)
    np.testing.assert_array_equal(loaded_mean, mean)
    np.testing.assert_array_equal(loaded_cov, cov)

    cache_dir = tmp_path / "cache"
    first = FrechetReference.from_file(stats_path, cache_dir=cache_dir)
    cached = list(cache_dir.iterdir())
    assert [p.name for p in cached] == [f"fid-sqrtcov-v1-{first.sha256}.npy"]
    np.testing.assert_allclose(first.sqrt_cov @ first.sqrt_cov, cov, atol=1e-10)

    def no_factorisation(cov: np.ndarray) -> np.ndarray:
        raise AssertionError("the cached square root should have been used")

    monkeypatch.setattr(fid_module, "_symmetric_sqrt", no_factorisation)
    second = FrechetReference.from_file(stats_path, cache_dir=cache_dir)
    np.testing.assert_array_equal(second.sqrt_cov, first.sqrt_cov)
    monkeypatch.undo()

    # A damaged cache file is recomputed and replaced rather than trusted.
    cached[0].write_bytes(b"not an npy file")
    third = FrechetReference.from_file(stats_path, cache_dir=cache_dir)
    np.testing.assert_array_equal(third.sqrt_cov, first.sqrt_cov)
    assert np.load(cached[0]).shape == (64, 64)


def test_changed_reference_gets_a_new_cache_entry(tmp_path):
    stats_path = tmp_path / "stats.pth"
    save_basicsr_stats(stats_path, inception_like_features(100, 32, seed=12))
    first = FrechetReference.from_file(stats_path, cache_dir=tmp_path)
    save_basicsr_stats(stats_path, inception_like_features(100, 32, seed=13))
    second = FrechetReference.from_file(stats_path, cache_dir=tmp_path)
    assert first.sha256 != second.sha256
    assert len(list(tmp_path.glob("fid-sqrtcov-*.npy"))) == 2


def test_reference_loader_reads_numpy1_era_pickles(tmp_path):
    # The official inception_FFHQ_512.pth was pickled under numpy 1, whose arrays name
    # numpy.core.multiarray._reconstruct; rewrite a fresh file's pickle to that spelling.
    fresh, old = tmp_path / "fresh.pth", tmp_path / "old.pth"
    mean, cov = save_basicsr_stats(fresh, inception_like_features(20, 4, seed=14))
    with zipfile.ZipFile(fresh) as source, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(info, data)
    loaded_mean, loaded_cov = load_reference_statistics(old)
    np.testing.assert_array_equal(loaded_mean, mean)
    np.testing.assert_array_equal(loaded_cov, cov)


class _Payload:
    def __reduce__(self):
        return (print, ("this must not run",))


def test_reference_loader_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"mean": np.zeros(4), "cov": np.eye(4), "extra": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_reference_statistics(path)


# --- the FID Inception ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inception():
    torch.manual_seed(0)
    return build_fid_inception()


def test_inception_state_dict_matches_the_official_layout(inception):
    state = inception.state_dict()
    # 566 entries: 94 BasicConv2d (conv weight + 5 BatchNorm entries each) + fc weight and bias.
    assert len(state) == 566
    expected_shapes = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_1a_3x3.bn.running_var": (32,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7b.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(key.startswith("AuxLogits") for key in state)  # the FID net has aux_logits=False
    # pytorch-fid builds torchvision's Inception3(num_classes=1008, aux_logits=False) and swaps blocks
    # of identical parameters, so the key order and shapes must equal that model's.
    torchvision_state = torchvision.models.inception_v3(
        weights=None, num_classes=1008, aux_logits=False, init_weights=False
    ).state_dict()
    assert list(state) == list(torchvision_state)
    assert all(state[k].shape == torchvision_state[k].shape for k in state)


def test_inception_weights_round_trip(inception, tmp_path):
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(inception.state_dict(), path)
    torch.manual_seed(99)
    reloaded = load_inception_state_dict(build_fid_inception(), path)
    for key, value in inception.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key

    # Missing BatchNorm counters are tolerated (they do not affect eval); anything else is not.
    state = {k: v for k, v in inception.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    load_inception_state_dict(build_fid_inception(), path)
    del state["fc.bias"]
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="fc.bias"):
        load_inception_state_dict(build_fid_inception(), path)


def test_fid_blocks_pool_like_tensorflow():
    torch.manual_seed(1)
    x = torch.randn(1, 192, 7, 7)
    fid_block, plain = FIDInceptionA(192, pool_features=32).eval(), InceptionA(192, pool_features=32).eval()
    plain.load_state_dict(fid_block.state_dict())
    with torch.no_grad():
        ours, theirs = fid_block(x), plain(x)
    # Only the pool branch (last 32 channels) differs, and only where the 3x3 window hits padding.
    torch.testing.assert_close(ours[:, :-32], theirs[:, :-32])
    torch.testing.assert_close(ours[:, -32:, 1:-1, 1:-1], theirs[:, -32:, 1:-1, 1:-1])
    assert not torch.allclose(ours[:, -32:, 0], theirs[:, -32:, 0])

    x = torch.randn(1, 64, 5, 5)
    e1, e2, plain_e = (cls(64).eval() for cls in (FIDInceptionE_1, FIDInceptionE_2, InceptionE))
    e2.load_state_dict(e1.state_dict())
    plain_e.load_state_dict(e1.state_dict())
    with torch.no_grad():
        out1, out2, out_plain = e1(x), e2(x), plain_e(x)
        max_pooled = e2.branch_pool(torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1))
    torch.testing.assert_close(out1[:, :-192], out_plain[:, :-192])
    torch.testing.assert_close(out2[:, -192:], max_pooled)
    assert not torch.allclose(out1[:, -192:], out2[:, -192:])


def test_features_shape_and_determinism(inception):
    extractor = FIDFeatureExtractor(inception)
    torch.manual_seed(2)
    batch = torch.rand(3, 3, 64, 80) * 2 - 1
    with torch.inference_mode():
        first, second = extractor(batch), extractor(batch)
    assert first.shape == (3, 2048)
    assert torch.isfinite(first).all() and first.abs().mean() > 1e-3
    assert torch.equal(first, second)
    with pytest.raises(ValueError, match="N, 3, H, W"):
        extractor(batch[0])


def test_scorer_features_match_the_basicsr_route(inception, full_reference):
    _, _, reference = full_reference
    extractor = FIDFeatureExtractor(inception)
    scorer = FIDScorer(extractor, reference)
    torch.manual_seed(3)
    images = [torch.rand(3, 96, 96) for _ in range(3)] + [torch.rand(3, 120, 100)]  # [0, 1]

    features = scorer.features(iter(images), batch_size=3)
    assert features.shape == (4, 2048) and features.dtype == np.float32
    # One image at a time gives the same features (up to float32 rounding of batched convs).
    np.testing.assert_allclose(scorer.features(images, batch_size=1), features, rtol=1e-4, atol=1e-5)
    # BasicSR's route: normalise to [-1, 1], let the network resize to 299.
    with torch.inference_mode():
        direct = extractor(torch.stack(images[:3]) * 2 - 1).numpy()
    np.testing.assert_allclose(features[:3], direct, rtol=1e-4, atol=1e-5)

    mu, sigma = compute_statistics(features)
    assert scorer.fid(features) == pytest.approx(reference.distance(features.mean(0, dtype=np.float64), sigma),
                                                 abs=1e-6)
    # BasicSR's float32 mean: rounding only (measured 2.1e-5 on 1430 with 4 images).
    assert scorer.fid(features) == pytest.approx(reference.distance(mu, sigma), rel=1e-7)
    assert scorer.features([]).shape == (0, 2048)
    with pytest.raises(ValueError, match="image 0"):
        scorer.features([torch.rand(1, 8, 8)])
