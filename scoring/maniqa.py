"""MANIQA's forward pass without the work whose results it throws away.

pyiqa's MANIQA runs a whole ViT-B/8 over its 20 crops, but reads only the outputs of blocks
6 to 9 (``extract_feature``); blocks 10 and 11, the final norm and the classifier head feed
nothing. Leaving them out changes no number: blocks 0 to 9 compute exactly what they did.

Its token-attention blocks (TABlock) form a 3072x3072 attention map per crop in three passes
over memory (product, scale, softmax); ``scaled_dot_product_attention`` computes the same
softmax(q k^T / sqrt(d)) v in one fused kernel. That reorders float32 sums, so scores move in
their last digits (tests hold them within 1e-6 of a direct pyiqa call; the rule is 1e-5).
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# pyiqa's MANIQA.extract_feature reads save_output.outputs[6..9]: the last block it needs.
LAST_READ_BLOCK = 9


def trim_unread_vit_blocks(net: Any) -> None:
    """Drop the ViT blocks after the last one MANIQA reads, and its unused norm and head (``net``: pyiqa's
    MANIQA network, whose submodules are untyped)."""
    vit = net.vit
    blocks = list(vit.blocks)
    if len(blocks) <= LAST_READ_BLOCK:
        return  # already trimmed, or an architecture this module does not know
    vit.blocks = nn.Sequential(*blocks[:LAST_READ_BLOCK + 1])
    for unused in ("norm", "fc_norm", "head_drop", "head"):
        if hasattr(vit, unused):
            setattr(vit, unused, nn.Identity())


def _fused_tablock_forward(self: Any, x: torch.Tensor) -> torch.Tensor:  # self: one of pyiqa's TABlocks
    batch, channels, tokens = x.shape
    q, k, v = self.c_q(x), self.c_k(x), self.c_v(x)
    attended = F.scaled_dot_product_attention(q, k, v, scale=self.norm_fact)
    return self.proj_drop(attended.transpose(1, 2).reshape(batch, channels, tokens)) + x


def fuse_token_attention(net: nn.Module) -> None:
    for stage in ("tablock1", "tablock2"):
        for block in getattr(net, stage):
            block.forward = types.MethodType(_fused_tablock_forward, block)


def streamline(net: nn.Module, *, fused_attention: bool = True) -> nn.Module:
    trim_unread_vit_blocks(net)
    if fused_attention:
        fuse_token_attention(net)
    return net
