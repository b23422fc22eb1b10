"""How many images each metric scores in one forward call: the defaults, and a worker's or a command
line's override (``"maniqa=4,musiq=8"``). No torch here: the platform's settings read this too."""

from __future__ import annotations

from scoring.profile import IQA_METRICS

# Images per forward call, where a metric's memory grows too fast with the batch. MANIQA
# scores 20 crops of each image at once and its TABlocks form a 3072x3072 attention map
# per crop: a score run with batches of 8 images peaked at 19.2 GiB RSS on a CPU. One
# image at a time gives the same scores (an image's crops never mix with another's).
# Every other metric takes the whole batch. A worker (FR_IMAGES_PER_CALL) or the command
# line (--images-per-call) sets other sizes per metric, e.g. a GPU's best ones.
DEFAULT_IMAGES_PER_CALL: dict[str, int] = {"maniqa": 1}


def parse_images_per_call(text: str) -> dict[str, int]:
    """``"maniqa=4,musiq=8"`` as ``{"maniqa": 4, "musiq": 8}``; an empty text is no override."""
    sizes: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = item.partition("=")
        name = name.strip()
        if not equals or name not in IQA_METRICS:
            raise ValueError(f"images per call: {item!r} is not METRIC=N with METRIC one of {', '.join(IQA_METRICS)}")
        try:
            size = int(value)
        except ValueError:
            size = 0
        if size < 1:
            raise ValueError(f"images per call: {item!r} needs a whole number of at least 1")
        sizes[name] = size
    return sizes
