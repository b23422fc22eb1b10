"""MANIQA without the work it discards: the trimmed ViT gives the same bits, the fused
token attention the same scores to float32 rounding, against pyiqa's own model."""

from __future__ import annotations

import pytest
import torch

from scoring.iqa import create_iqa_metric, score_batch
from scoring.maniqa import LAST_READ_BLOCK, streamline
from scoring.weights import WeightStore
from tests.scoring.test_iqa import direct_maniqa

# Two crops instead of pyiqa's 20: the same code path at a tenth of the cost; the default
# options are checked against pyiqa in test_iqa.py.
OPTIONS = {"test_sample": 2}


def images(count: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(17)
    return torch.rand(count, 3, 512, 512, generator=generator)


@pytest.fixture(scope="module")
def theirs(weights_dir):
    return direct_maniqa(weights_dir, **OPTIONS)


@pytest.fixture(scope="module")
def their_scores(theirs):
    with torch.inference_mode():
        return [theirs(image.unsqueeze(0)).double().item() for image in images()]


def test_trimmed_vit_gives_identical_scores(weights_dir, their_scores):
    trimmed = direct_maniqa(weights_dir, **OPTIONS)
    streamline(trimmed.net, fused_attention=False)
    assert len(trimmed.net.vit.blocks) == LAST_READ_BLOCK + 1
    with torch.inference_mode():
        ours = [trimmed(image.unsqueeze(0)).double().item() for image in images()]
    assert ours == their_scores  # bit for bit: the dropped blocks fed nothing


def test_trimming_too_far_changes_the_scores(weights_dir, their_scores):
    # The check above could pass by accident if the feature hooks read nothing: cut one more block.
    cut = direct_maniqa(weights_dir, **OPTIONS)
    cut.net.vit.blocks = torch.nn.Sequential(*list(cut.net.vit.blocks)[:LAST_READ_BLOCK])
    with torch.inference_mode(), pytest.raises(IndexError):
        cut(images(1))


def test_scorers_maniqa_is_streamlined_and_agrees_with_pyiqa(weights_dir, their_scores):
    ours = create_iqa_metric("maniqa", WeightStore(weights_dir), "cpu", OPTIONS)
    assert len(ours.net.vit.blocks) == LAST_READ_BLOCK + 1
    assert ours.net.tablock1[0].forward.__func__.__name__ == "_fused_tablock_forward"
    scores = score_batch(ours, images())
    assert scores == pytest.approx(their_scores, abs=1e-6, rel=0)
    assert scores != pytest.approx([0.0])
