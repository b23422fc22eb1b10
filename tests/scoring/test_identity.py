"""The identity test: similarity-transform alignment (cp2tform semantics) and AdaFace self-similarity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from scoring.identity import (
    CROP_SIZE,
    REFERENCE_POINTS_112,
    IdentityScorer,
    align_face,
    similarity_transform,
    to_adaface_input,
)
from scoring.inputs import read_landmarks
from scoring.scorer import read_rgb
from scoring.weights import MODEL_FILES, WeightStore
from tests.support.env import shared_dir

EXACT = 1e-9


def similarity_matrix(scale: float, angle: float, shift: tuple[float, float], mirror: bool = False) -> np.ndarray:
    """The 2x3 matrix of x -> scale * R(angle) [* mirror] x + shift."""
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if mirror:
        rotation = rotation @ np.diag([-1.0, 1.0])
    return np.hstack([rotation, np.array(shift, dtype=np.float64)[:, None]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


# --- similarity_transform ----------------------------------------------------------------------


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
    np.testing.assert_allclose(similarity_transform(REFERENCE_POINTS_112, moved), truth, atol=EXACT * 1e3)
    inverse = cv2.invertAffineTransform(truth)
    recovered = similarity_transform(moved, REFERENCE_POINTS_112)
    np.testing.assert_allclose(recovered, inverse, atol=EXACT * 1e3)
    np.testing.assert_allclose(apply(recovered, moved), REFERENCE_POINTS_112, atol=1e-6)
    assert np.linalg.det(recovered[:, :2]) > 0  # a rotation, not a reflection


def test_mirrored_points_take_the_reflective_branch():
    # A mirror image of a face: left and right swap sides, so only a reflection fits exactly.
    mirrored = REFERENCE_POINTS_112.copy()
    mirrored[:, 0] = CROP_SIZE[0] - mirrored[:, 0]
    matrix = similarity_transform(mirrored, REFERENCE_POINTS_112)
    assert np.linalg.det(matrix[:, :2]) < 0
    np.testing.assert_allclose(apply(matrix, mirrored), REFERENCE_POINTS_112, atol=1e-9)
    np.testing.assert_allclose(matrix, [[-1, 0, CROP_SIZE[0]], [0, 1, 0]], atol=1e-9)

    # A mirrored, rotated, scaled and shifted face: the reflective similarity is recovered exactly.
    truth = similarity_matrix(1.9, 0.3, (40.0, 25.0), mirror=True)
    moved = apply(truth, REFERENCE_POINTS_112)
    recovered = similarity_transform(moved, REFERENCE_POINTS_112)
    assert np.linalg.det(recovered[:, :2]) < 0
    np.testing.assert_allclose(recovered, cv2.invertAffineTransform(truth), atol=1e-9)


def test_non_mirrored_noisy_points_keep_the_direct_branch():
    rng = np.random.default_rng(5)
    truth = similarity_matrix(2.5, 0.2, (100.0, 80.0))
    noisy = apply(truth, REFERENCE_POINTS_112) + rng.normal(0, 1.5, REFERENCE_POINTS_112.shape)
    matrix = similarity_transform(noisy, REFERENCE_POINTS_112)
    assert np.linalg.det(matrix[:, :2]) > 0
    # Not exact (noise), but close to the true inverse.
    assert np.abs(apply(matrix, noisy) - REFERENCE_POINTS_112).max() < 2.0


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
