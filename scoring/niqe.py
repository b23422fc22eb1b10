"""NIQE whose result does not depend on the CPU: pyiqa's metric, given a luma computed in one fixed order.

pyiqa's NIQE turns the RGB input into luma with a float32 matrix product, rounds it to
integers, and computes everything after that in float64. The rounding is the CPU-dependent
step: the product's last bit depends on the BLAS kernel (Intel's MKL paths and CUDA
accumulate with fused multiply-adds, MKL on AMD CPUs does not), a pixel whose luma sits
within that bit of .5 rounds the other way, and NIQE, fitted on a few hundred such
pixels, moves in its third decimal on some images (docs/numerics.md has the figures).

``fma_ordered_luma`` computes that same float32 product exactly as an FMA kernel does,
``y = fma(b, wb, fma(g, wg, r * wr))``, using float64 arithmetic with an exact
error term, so every machine rounds the same pixels the same way. Everything else is
pyiqa's own code, fed the rounded luma as a one-channel image.
"""

from __future__ import annotations

import numpy as np
import torch

# pyiqa's rgb2yiq luma row, as the float32 constants its matmul uses.
LUMA_WEIGHTS = tuple(float(w) for w in np.array([0.299, 0.587, 0.114], dtype=np.float32))
_F32_255 = float(np.float32(255.0))


def round_to_float32(exact: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Round ``exact + error`` (``error`` the part float64 could not hold) to float32, correctly.

    Casting ``exact`` alone is right except when it lies exactly halfway between two float32
    values and the dropped ``error`` says on which side the true sum is.
    """
    rounded = exact.astype(np.float32)
    back = rounded.astype(np.float64)
    towards = np.where(exact > back, np.float32(np.inf), np.float32(-np.inf))
    neighbour = np.nextafter(rounded, towards).astype(np.float64)
    halfway = (exact != back) & (exact == (back + neighbour) / 2) & (error != 0)
    if halfway.any():
        pick_upper = error > 0
        upper = np.maximum(back, neighbour).astype(np.float32)
        lower = np.minimum(back, neighbour).astype(np.float32)
        rounded = np.where(halfway, np.where(pick_upper, upper, lower), rounded)
    return rounded


def fma32(a: np.ndarray, b: np.ndarray | np.floating, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add, ``round32(a * b + c)``, for float32 ``a``, ``b``, ``c`` (arrays or scalars)."""
    product = a.astype(np.float64) * b  # exact: two 24-bit significands fit in 53 bits
    addend = c.astype(np.float64)
    total = product + addend
    # Knuth's TwoSum: the exact rounding error of product + addend.
    virtual = total - product
    error = (product - (total - virtual)) + (addend - virtual)
    return round_to_float32(total, error)


def fma_ordered_luma(rgb: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) float32 RGB in [0,1] -> (N,1,H,W) float64 luma in 0..255, rounded as pyiqa rounds it."""
    x = rgb.detach().to("cpu", torch.float32).numpy()
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    wr, wg, wb = (np.float32(w) for w in LUMA_WEIGHTS)
    acc = (r.astype(np.float64) * wr).astype(np.float32)  # fma(r, wr, 0): one rounding
    acc = fma32(g, wg, acc)
    acc = fma32(b, wb, acc)
    luma = (acc.astype(np.float64) * _F32_255).astype(np.float32)  # pyiqa's float32 "* 255", exact product
    return torch.from_numpy(np.round(luma).astype(np.float64)).unsqueeze(1)  # round half to even, as torch


class FixedOrderNiqe(torch.nn.Module):
    """pyiqa's NIQE InferenceModel behind ``fma_ordered_luma``; otherwise pyiqa's code unchanged."""

    metric_name = "niqe"

    def __init__(self, metric: torch.nn.Module) -> None:
        super().__init__()
        self.metric = metric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            return self.metric(x)
        # A one-channel input is scaled by 255 and rounded again in float64: the integers survive.
        luma = fma_ordered_luma(x) / 255.0
        return self.metric(luma.to(x.device))
