"""A small demo input set made from a real photo that ships inside scikit-image.

The astronaut portrait (Eileen Collins, NASA, public domain) is cropped, flipped and
degraded differently for each image: downscaling, blur, noise, JPEG, fading and
grayscale, like the real-world low-quality inputs of the challenge. Landmarks follow
every crop and flip, so the identity test warps each input correctly.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from scoring.inputs import Landmarks, write_landmarks

# Five landmarks of the astronaut's face in the 512x512 original: eyes, nose, mouth corners.
ASTRONAUT_POINTS = np.array(
    [[201.1, 101.1], [246.7, 102.0], [225.2, 122.6], [206.7, 142.4], [241.1, 143.2]]
)
DATASETS = ("CelebA", "CelebChild-Test", "LFW-Test", "WebPhoto-Test", "Wider-Test")
SIZE = 512


def _degrade(image: Image.Image, rng: np.random.Generator, dataset: str) -> Image.Image:
    factor = int(rng.integers(3, 9))
    small = image.resize((SIZE // factor, SIZE // factor), Image.Resampling.BICUBIC)
    small = small.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    pixels = np.asarray(small).astype(np.float64)
    pixels += rng.normal(0, rng.uniform(2, 10), pixels.shape)
    if dataset == "WebPhoto-Test":  # faded colours of old web photos
        pixels = pixels * 0.75 + 40
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, format="JPEG", quality=int(rng.integers(20, 60)))
    degraded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if dataset == "CelebChild-Test":  # many of its photos are black and white
        degraded = degraded.convert("L").convert("RGB")
    return degraded.resize((SIZE, SIZE), Image.Resampling.BICUBIC)


def make_demo_inputs(folder: Path, per_dataset: int = 2, seed: int = 7) -> Path:
    """Write ``folder/<Dataset>/<stem>.png`` and ``folder/landmarks.csv``; returns the CSV path."""
    from skimage import data  # here, not at the top: scikit-image is slow to import and only the demo needs it

    original = Image.fromarray(data.astronaut())
    rng = np.random.default_rng(seed)
    rows: list[Landmarks] = []
    for dataset in DATASETS:
        (folder / dataset).mkdir(parents=True, exist_ok=True)
        for index in range(per_dataset):
            side = float(rng.uniform(180, 300))
            cx, cy = 224 + rng.uniform(-15, 15), 125 + rng.uniform(-15, 15)
            left, top = cx - side / 2, cy - side / 2
            crop = original.crop((int(left), int(top), int(left + side), int(top + side)))
            scale = SIZE / (int(left + side) - int(left))
            points = (ASTRONAUT_POINTS - [int(left), int(top)]) * scale
            image = crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            if index % 2 == 1:  # a mirrored face: the eyes and mouth corners swap sides
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                points[:, 0] = SIZE - 1 - points[:, 0]
                points = points[[1, 0, 2, 4, 3]]
            stem = f"{dataset.split('-')[0].lower()}_{index:03d}"
            _degrade(image, rng, dataset).save(folder / dataset / f"{stem}.png")
            box = (float(points[:, 0].min() - 60), float(points[:, 1].min() - 80),
                   float(points[:, 0].max() + 60), float(points[:, 1].max() + 60))
            rows.append(Landmarks(stem=stem, dataset=dataset, box=box,
                                  points=tuple((float(x), float(y)) for x, y in points)))
    csv_path = folder / "landmarks.csv"
    write_landmarks(csv_path, rows)
    return csv_path


def make_restored_zip(inputs: Path, zip_path: Path, sharpen: bool = True) -> Path:
    """A baseline 'restoration' of every input (a mild unsharp mask), zipped as a team would."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for png in sorted(inputs.glob("*/*.png")):
            image = Image.open(png).convert("RGB")
            if sharpen:
                image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=80, threshold=2))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            archive.writestr(f"{png.parent.name}/{png.name}", buffer.getvalue())
    return zip_path


# The demo challenge's pages (Markdown; the Evaluation page's formulas and thresholds are added from each
# phase's scoring profile when the page is shown).
DEMO_PAGES = {
    "overview": """Restore **real-world degraded faces**: blur, noise, JPEG artefacts, faded colours, low resolution.

Each restored face must keep its person's identity (an AdaFace test against the input) and should look as good
as it can (NIQE, CLIP-IQA, MANIQA, MUSIQ, Q-Align, FID). This demo runs the NTIRE 2025 rules on a small input
set made from one public-domain portrait.

1. Sign up, verify your email address, and register below (accept the terms).
2. Create a team, or join one with an invitation link.
3. Download the phase's inputs and landmarks from its page, restore every face at 512x512, zip them as
   `<Dataset>/<stem>.png`, check and score the zip locally, and upload it.
""",
    "evaluation": """Each submission is a zip of 512x512 PNG files, one per input, named `<Dataset>/<stem>.png`.
The server checks the archive, runs the identity test on every image, then the quality metrics; the leaderboard
ranks teams by the total of their counted submission. Run the same scorer on your machine with
`python -m scoring check` and `python -m scoring score` (see the API page).
""",
    "data": """The inputs are low-quality faces from five source datasets (CelebA, CelebChild-Test, LFW-Test,
WebPhoto-Test, Wider-Test); each phase page lists its datasets and image counts. Each input comes with five
facial landmarks (eyes, nose, mouth corners) that the identity test uses to align the faces.
""",
    "terms": """By registering you agree that:

* one person takes part in one team; a team submits within the phase's daily and total limits;
* results, team names and members' names and affiliations may be published in the challenge report;
* the test phase's entry comes with a factsheet and a link to the team's code;
* the input images are used for this challenge only.
""",
}
