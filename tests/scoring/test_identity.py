"""The identity test: similarity-transform alignment (cp2tform semantics) and AdaFace self-similarity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from scoring.identity import (
    CROP_SIZE,
    REFERENCE_POINTS_112,
    IdentityScorer,
    _apply,
    _fit_nonreflective,
    align_face,
    fit_similarity,
    similarity_transform,
    to_adaface_input,
)
from scoring.inputs import read_landmarks
from scoring.scorer import read_rgb
from scoring.weights import MODEL_FILES, WeightStore
from tests.support.env import shared_dir
from tests.support.identity_spread import organizers_transform

EXACT = 1e-9


def similarity_matrix(scale: float, angle: float, shift: tuple[float, float], mirror: bool = False) -> np.ndarray:
    """The 2x3 matrix of x -> scale * R(angle) [* mirror] x + shift."""
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if mirror:
        rotation = rotation @ np.diag([-1.0, 1.0])
    return np.hstack([rotation, np.array(shift, dtype=np.float64)[:, None]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


# --- fit_similarity (float64) and similarity_transform (float32 inputs, as the organizers fit) ---


def test_reference_points_map_onto_themselves():
    matrix = similarity_transform(REFERENCE_POINTS_112, REFERENCE_POINTS_112)
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=EXACT)


@pytest.mark.parametrize(
    ("scale", "angle", "shift"),
    [(1.0, 0.0, (7.5, -3.25)), (0.23, 0.41, (12.0, -40.0)), (3.7, -1.2, (-100.5, 250.0)), (1.0, np.pi, (0.0, 0.0))],
)
def test_known_similarity_is_recovered_exactly(scale, angle, shift):
    truth = similarity_matrix(scale, angle, shift)
    # From the reference points to their image, and from the image back to the reference.
    moved = apply(truth, REFERENCE_POINTS_112)
    np.testing.assert_allclose(fit_similarity(REFERENCE_POINTS_112, moved), truth, atol=EXACT * 1e3)
    inverse = cv2.invertAffineTransform(truth)
    recovered = fit_similarity(moved, REFERENCE_POINTS_112)
    np.testing.assert_allclose(recovered, inverse, atol=EXACT * 1e3)
    np.testing.assert_allclose(apply(recovered, moved), REFERENCE_POINTS_112, atol=1e-6)
    assert np.linalg.det(recovered[:, :2]) > 0  # a rotation, not a reflection


def test_mirrored_points_take_the_reflective_branch():
    # A mirror image of a face: left and right swap sides, so only a reflection fits exactly.
    mirrored = REFERENCE_POINTS_112.copy()
    mirrored[:, 0] = CROP_SIZE[0] - mirrored[:, 0]
    matrix = fit_similarity(mirrored, REFERENCE_POINTS_112)
    assert np.linalg.det(matrix[:, :2]) < 0
    np.testing.assert_allclose(apply(matrix, mirrored), REFERENCE_POINTS_112, atol=1e-9)
    np.testing.assert_allclose(matrix, [[-1, 0, CROP_SIZE[0]], [0, 1, 0]], atol=1e-9)

    # A mirrored, rotated, scaled and shifted face: the reflective similarity is recovered exactly.
    truth = similarity_matrix(1.9, 0.3, (40.0, 25.0), mirror=True)
    moved = apply(truth, REFERENCE_POINTS_112)
    recovered = fit_similarity(moved, REFERENCE_POINTS_112)
    assert np.linalg.det(recovered[:, :2]) < 0
    np.testing.assert_allclose(recovered, cv2.invertAffineTransform(truth), atol=1e-9)


def test_non_mirrored_noisy_points_keep_the_direct_branch():
    rng = np.random.default_rng(5)
    truth = similarity_matrix(2.5, 0.2, (100.0, 80.0))
    noisy = apply(truth, REFERENCE_POINTS_112) + rng.normal(0, 1.5, REFERENCE_POINTS_112.shape)
    matrix = fit_similarity(noisy, REFERENCE_POINTS_112)
    assert np.linalg.det(matrix[:, :2]) > 0
    # Not exact (noise), but close to the true inverse.
    assert np.abs(apply(matrix, noisy) - REFERENCE_POINTS_112).max() < 2.0


def test_similarity_transform_fits_from_float32_points_as_the_organizers_do():
    # Their warp_and_crop_face casts landmarks and reference points to np.float32 before fitting.
    points = read_landmarks(shared_dir() / "ntire2025" / "val_face.csv")
    moved = 0
    for landmarks in list(points.values())[:50]:
        src = np.asarray(landmarks.points, dtype=np.float64)
        rounded = fit_similarity(src.astype(np.float32).astype(np.float64),
                                 REFERENCE_POINTS_112.astype(np.float32).astype(np.float64))
        np.testing.assert_array_equal(similarity_transform(landmarks.points, REFERENCE_POINTS_112), rounded)
        moved += not np.array_equal(fit_similarity(src, REFERENCE_POINTS_112), rounded)
    assert moved > 0  # the rounding changes real fits: a fit from float64 values would not match theirs


def test_a_fit_that_the_mirrored_residual_rule_decides_follows_the_organizers():
    # Their port measures both residuals against the mirrored reference (it mirrors the array
    # in place). On real landmarks both rules pick the direct fit; on distorted ones they can
    # disagree, and then we must pick what the organizers pick.
    rng = np.random.default_rng(0)
    disagreements = 0
    for _ in range(3000):
        src = REFERENCE_POINTS_112 * rng.uniform(0.3, 5) + rng.normal(0, rng.uniform(1, 60), REFERENCE_POINTS_112.shape)
        ours = similarity_transform(src, REFERENCE_POINTS_112)
        np.testing.assert_allclose(ours, organizers_transform(src), rtol=0, atol=1e-9)
        plain_rule = fit_similarity_plain_residuals(src.astype(np.float32).astype(np.float64))
        disagreements += not np.allclose(ours, plain_rule, rtol=0, atol=1e-9)
    assert disagreements > 0  # the rule was exercised where it matters


def fit_similarity_plain_residuals(src: np.ndarray) -> np.ndarray:
    """Both fits, with residuals measured against the unmirrored reference: the rule they do not use."""
    dst = REFERENCE_POINTS_112.astype(np.float32).astype(np.float64)
    direct = _fit_nonreflective(src, dst)
    mirrored = dst.copy()
    mirrored[:, 0] = -mirrored[:, 0]
    reflected = _fit_nonreflective(src, mirrored) @ np.diag([-1.0, 1.0, 1.0])
    best = min((direct, reflected), key=lambda m: np.linalg.norm(_apply(m, src) - dst))
    return best[:, 0:2].T


def test_align_face_with_reference_landmarks_is_the_identity_warp():
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    aligned = align_face(image, REFERENCE_POINTS_112.tolist())
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    np.testing.assert_array_equal(aligned, image)


def test_adaface_input_is_bgr_in_minus_one_to_one():
    crop = np.zeros((112, 112, 3), dtype=np.uint8)
    crop[..., 0] = 255  # pure red in RGB
    tensor = to_adaface_input(crop)
    assert tuple(tensor.shape) == (1, 3, 112, 112)
    assert tensor[0, 0].eq(-1).all() and tensor[0, 1].eq(-1).all()  # blue, green
    assert tensor[0, 2].eq(1).all()  # red, last in BGR


# --- AdaFace --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity(weights_dir) -> IdentityScorer:
    from scoring.nets.adaface import load_adaface

    store = WeightStore(weights_dir)
    return IdentityScorer(load_adaface(store.path(MODEL_FILES["adaface"][0])), "cpu")


@pytest.fixture(scope="module")
def faces() -> list[tuple[np.ndarray, tuple]]:
    """One real validation input per dataset with its landmarks from val_face.csv."""
    root = shared_dir() / "ntire2025"
    landmarks = read_landmarks(root / "val_face.csv")
    faces = []
    for dataset in sorted(p for p in (root / "val").iterdir() if p.is_dir()):
        png = sorted(dataset.glob("*.png"))[0]
        faces.append((read_rgb(png), landmarks[png.stem].points))
    return faces


def test_adaface_similarity_of_an_image_with_itself_is_one(identity, faces):
    rgb, points = faces[0]
    (single,) = identity.similarities([(rgb, rgb, points)])
    assert abs(single - 1.0) <= 1e-5
    # Batched (two chunks), faces of three datasets each with itself.
    sims = identity.similarities([(rgb, rgb, points) for rgb, points in faces[:3]], batch_size=2)
    assert len(sims) == 3
    for sim in sims:
        assert abs(sim - 1.0) <= 1e-5


def test_adaface_tells_different_faces_apart(identity, faces):
    # Even with random test weights the embedding must not be constant, or the self test means nothing.
    (first, points), (second, _) = faces[0], faces[1]
    (sim,) = identity.similarities([(first, second, points)])
    assert sim < 0.9999
    assert -1.0 <= sim <= 1.0


# --- identity similarities that spread, against the organizers' steps ---------------------------

# Largest |ours - organizers'| seen: 3.0e-7 on AMD EPYC (issue #11's session), 1.2e-7 on Intel Xeon
# (issue #11's report): float32 noise of batched against one-image forward passes. Fitting from
# unrounded landmarks, the deviation this guards against, gave up to 8.3e-5.
ID_SIM_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def spread_pairs(weights_dir, tmp_path_factory):
    """AdaFace recalibrated on 24 validation faces; 20 pairs of 5 held-out faces: the face itself,
    two blurs of it, and another face."""
    from PIL import Image, ImageFilter

    from tests.support.identity_spread import recalibrated_adaface

    root = shared_dir() / "ntire2025"
    landmarks = read_landmarks(root / "val_face.csv")
    pngs = sorted(root.glob("val/*/*.png"))
    calibration = pngs[::18][:24]
    held_out = [p for p in pngs if p not in calibration][::85][:5]
    model = recalibrated_adaface(
        WeightStore(weights_dir).path(MODEL_FILES["adaface"][0]),
        [(read_rgb(p), landmarks[p.stem].points) for p in calibration],
    )
    scratch = tmp_path_factory.mktemp("spread")
    pairs = []
    for index, lq in enumerate(held_out):
        image = Image.open(lq).convert("RGB")
        for radius in (0, 3, 8):
            restored = scratch / f"{lq.stem}-blur{radius}.png"
            (image.filter(ImageFilter.GaussianBlur(radius)) if radius else image).save(restored)
            pairs.append((lq, restored, landmarks[lq.stem].points))
        pairs.append((lq, held_out[(index + 1) % len(held_out)], landmarks[lq.stem].points))
    return model, pairs


def test_spread_similarities_equal_the_organizers_steps(spread_pairs):
    from scoring.profile import get_profile
    from tests.support.identity_spread import organizers_similarity, our_similarities

    model, pairs = spread_pairs
    ours = np.array(our_similarities(model, pairs))
    theirs = np.array([organizers_similarity(model, lq, restored, points) for lq, restored, points in pairs])
    # The weights tell faces apart: pairs on both sides of every NTIRE 2025 threshold.
    for threshold in set(get_profile("ntire2025").identity_thresholds.values()):
        assert (ours < threshold - 1e-3).any() and (ours > threshold + 1e-3).any(), threshold
    assert np.abs(ours - theirs).max() <= ID_SIM_TOLERANCE, np.abs(ours - theirs).max()
    for threshold in (0.3, 0.5, 0.6):
        np.testing.assert_array_equal(ours < threshold, theirs < threshold)


def test_spread_similarities_catch_a_fit_from_unrounded_landmarks(spread_pairs, tmp_path):
    # The deviation the float32 rounding fixed must show at this tolerance, or the test above means
    # nothing: on the three validation faces whose fit the rounding moves most, a fit from the
    # unrounded landmarks is compared with the organizers' steps.
    from PIL import Image, ImageFilter

    from tests.support.identity_spread import organizers_similarity

    model, _ = spread_pairs
    root = shared_dir() / "ntire2025"
    landmarks = read_landmarks(root / "val_face.csv")

    def unrounded_fit(png):
        return fit_similarity(np.asarray(landmarks[png.stem].points, dtype=np.float64), REFERENCE_POINTS_112)

    def moved_by_rounding(png) -> float:
        return float(np.abs(unrounded_fit(png) - similarity_transform(landmarks[png.stem].points,
                                                                     REFERENCE_POINTS_112)).max())

    faces = sorted(root.glob("val/*/*.png"), key=moved_by_rounding, reverse=True)[:3]
    scorer = IdentityScorer(model, "cpu")
    deviations = []
    for lq in faces:
        restored = tmp_path / f"{lq.stem}.png"
        Image.open(lq).convert("RGB").filter(ImageFilter.GaussianBlur(3)).save(restored)
        matrix = unrounded_fit(lq)
        crops = [to_adaface_input(cv2.warpAffine(read_rgb(path), matrix, CROP_SIZE)) for path in (lq, restored)]
        first, second = scorer.embed(torch.cat(crops))
        theirs = organizers_similarity(model, lq, restored, landmarks[lq.stem].points)
        deviations.append(abs(float((first * second).sum()) - theirs))
        (ours,) = scorer.similarities([(read_rgb(lq), read_rgb(restored), landmarks[lq.stem].points)])
        assert abs(ours - theirs) <= ID_SIM_TOLERANCE
    assert max(deviations) > 10 * ID_SIM_TOLERANCE, deviations
