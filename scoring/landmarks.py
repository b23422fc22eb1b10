"""Five facial landmarks for input images that came without a landmarks CSV.

facexlib's RetinaFace (ResNet-50 backbone), built here and loaded from our own weights
directory: ``detection_Resnet50_Final.pth`` is checked against its sha256 by
``WeightStore`` like every other weight file. facexlib's ``init_detection_model`` is
never called, since it downloads whatever it is missing.

No Django here: the platform calls ``detect_landmarks`` and decides what to do with the
inputs where no face was found (the organizer supplies their landmarks in a CSV).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from scoring.inputs import InputImage, Landmarks
from scoring.weights import MODEL_FILES, WeightStore

DETECTOR_FILE = MODEL_FILES["retinaface"][0]
CONFIDENCE = 0.8  # facexlib's default threshold for a detection to count as a face


def resolve_device(device: str | torch.device | None) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def state_dict_from(path: Path) -> dict[str, torch.Tensor]:
    """The detector's weights as a state dict, without the ``module.`` prefix DataParallel leaves."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {(key[7:] if key.startswith("module.") else key): value for key, value in state.items()}


def build_detector(device: str | torch.device | None = "cpu"):
    """facexlib's RetinaFace-R50 with untrained weights (the torchvision backbone is built without any download)."""
    from facexlib.detection.retinaface import RetinaFace

    with warnings.catch_warnings():
        # facexlib builds torchvision's resnet50 with the deprecated ``pretrained=False``: no download, a warning.
        warnings.simplefilter("ignore", UserWarning)
        return RetinaFace(network_name="resnet50", half=False, device=resolve_device(device))


def load_detector(weights_dir: Path | str, device: str | torch.device | None = "auto"):
    """RetinaFace-R50 with the verified weights of ``weights_dir``; raises WeightsError naming the fix."""
    path = WeightStore(weights_dir).path(DETECTOR_FILE)
    resolved = resolve_device(device)
    model = build_detector(resolved)
    model.load_state_dict(state_dict_from(path), strict=True)
    model.eval()
    return model.to(resolved)


def _bgr(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def detect_one(model, image: InputImage, conf_threshold: float = CONFIDENCE) -> Landmarks | None:
    """The most confident face of one image, or None when there is none above the threshold."""
    with torch.inference_mode():
        found = model.detect_faces(_bgr(image.path), conf_threshold=conf_threshold, use_origin_size=True)
    if found is None or len(found) == 0:
        return None
    best = found[int(np.argmax(found[:, 4]))]
    box = tuple(float(v) for v in best[0:4])
    points = tuple((float(best[5 + 2 * i]), float(best[6 + 2 * i])) for i in range(5))
    return Landmarks(stem=image.stem, dataset=image.dataset, box=box, points=points)  # type: ignore[arg-type]


def detect_landmarks(
    images: Sequence[InputImage], weights_dir: Path | str, device: str | torch.device | None = "auto",
    conf_threshold: float = CONFIDENCE, progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Landmarks], list[str]]:
    """Detect the five landmarks of each image.

    Returns (stem -> Landmarks for every image with a face, stems of the images where no face was
    found, in input order). Coordinates are in the image's own pixels, as in ``val_face.csv``.
    ``progress(done, total)`` is called after each image.
    """
    if not images:
        return {}, []
    model = load_detector(weights_dir, device)
    found: dict[str, Landmarks] = {}
    missing: list[str] = []
    for done, image in enumerate(images, 1):
        landmarks = detect_one(model, image, conf_threshold)
        if landmarks is None:
            missing.append(image.stem)
        else:
            found[image.stem] = landmarks
        if progress is not None:
            progress(done, len(images))
    return found, missing
