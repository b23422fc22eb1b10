"""AdaFace test weights whose similarities spread, and the organizers' identity steps written anew.

Random test weights keep random BatchNorm statistics, and every face then embeds to nearly
the same vector (similarity ~1 for any pair). Recalibrating the statistics on real aligned
faces makes the embedding tell faces apart, so a test can put images on both sides of a
threshold. ``organizers_similarity`` follows the organizers' eval step by step (their
alignment port and AdaFace input code, read for what they do) without our module's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from scoring.identity import IdentityScorer, align_face, to_adaface_input
from scoring.nets.adaface import IR50, load_adaface

# The 96x112 reference points of the organizers' align_trans.py; their square crop adds 8 to x.
ORGANIZERS_REFERENCE_96x112 = [
    [30.29459953, 51.69630051],
    [65.53179932, 51.50139999],
    [48.02519989, 71.73660278],
    [33.54930115, 92.3655014],
    [62.72990036, 92.20410156],
]


def recalibrated_adaface(weights_file: Path, faces: Sequence[tuple[np.ndarray, Sequence[Sequence[float]]]]) -> IR50:
    """AdaFace with the test weights, its BatchNorm statistics re-estimated on ``faces`` (aligned)."""
    model = load_adaface(weights_file)
    batch = torch.cat([to_adaface_input(align_face(rgb, points)) for rgb, points in faces])
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over every batch seen
    model.train()
    with torch.no_grad():
        for start in range(0, len(batch), 16):
            model(batch[start:start + 16])
    return model.eval()


def _organizers_fit(uv: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """cp2tform's non-reflective similarity as their port solves it: for dst -> src, then inverted."""
    count = xy.shape[0]
    x, y = xy[:, 0].reshape(-1, 1), xy[:, 1].reshape(-1, 1)
    design = np.vstack((
        np.hstack((x, y, np.ones((count, 1)), np.zeros((count, 1)))),
        np.hstack((y, -x, np.zeros((count, 1)), np.ones((count, 1)))),
    ))
    target = np.vstack((uv[:, 0].reshape(-1, 1), uv[:, 1].reshape(-1, 1)))
    solution = np.squeeze(np.linalg.lstsq(design, target, rcond=None)[0])
    sc, ss, tx, ty = solution
    inverse = np.array([[sc, -ss, 0], [ss, sc, 0], [tx, ty, 1]])
    forward = np.linalg.inv(inverse)
    forward[:, 2] = np.array([0, 0, 1])
    return forward


def organizers_transform(landmarks: Sequence[Sequence[float]]) -> np.ndarray:
    reference = np.array(ORGANIZERS_REFERENCE_96x112)
    reference[:, 0] += (112 - 96) / 2
    uv = np.float32(landmarks)
    xy = np.float32(reference)
    first = _organizers_fit(uv, xy)
    xy[:, 0] = -1 * xy[:, 0]  # in place, as theirs: both residuals below see the mirrored points
    second = _organizers_fit(uv, xy) @ np.array([[-1, 0, 0], [0, 1, 0], [0, 0, 1]])

    def residual(transform: np.ndarray) -> float:
        moved = np.dot(np.hstack((uv, np.ones((uv.shape[0], 1)))), transform)[:, 0:-1]
        return float(np.linalg.norm(moved - xy))

    best = first if residual(first) <= residual(second) else second
    return best[:, 0:2].T


def _organizers_input(path: Path, landmarks: Sequence[Sequence[float]]) -> torch.Tensor:
    rgb = np.array(Image.open(path).convert("RGB"))
    aligned = cv2.warpAffine(rgb, organizers_transform(landmarks), (112, 112))
    bgr = ((aligned[:, :, ::-1] / 255.0) - 0.5) / 0.5
    return torch.tensor(bgr.transpose(2, 0, 1)).unsqueeze(0).float()


@torch.inference_mode()
def organizers_similarity(model: IR50, lq: Path, restored: Path, landmarks: Sequence[Sequence[float]]) -> float:
    """One pair, one image per forward pass, ``feature @ feature.T``: the organizers' way."""
    lq_feature, _ = model(_organizers_input(lq, landmarks))
    restored_feature, _ = model(_organizers_input(restored, landmarks))
    return float((lq_feature @ restored_feature.T).item())


def our_similarities(model: IR50, pairs: Sequence[tuple[Path, Path, Sequence[Sequence[float]]]]) -> list[float]:
    from scoring.scorer import read_rgb

    scorer = IdentityScorer(model, "cpu")
    return scorer.similarities([(read_rgb(lq), read_rgb(out), points) for lq, out, points in pairs])


