"""AdaFace's IR-50 backbone (112x112 input, 512-d embedding).

The module names and parameter shapes follow the layout of the official checkpoint
``adaface_ir50_ms1mv2.ckpt``: a Lightning checkpoint whose ``state_dict`` keys are
``model.<name>``, where ``<name>`` is a key of this module's ``state_dict``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# IR-50: four stages of improved-residual units, (in, out, units); the first unit of each stage strides 2.
IR50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))
EMBEDDING_SIZE = 512


class BasicBlockIR(nn.Module):
    def __init__(self, in_channels: int, depth: int, stride: int) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, (1, 1), stride, bias=False),
                nn.BatchNorm2d(depth),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, (3, 3), (1, 1), 1, bias=False),
            nn.BatchNorm2d(depth),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IR50(nn.Module):
    """Returns (L2-normalised embedding, its norm), as AdaFace's network does."""

    def __init__(self) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, (3, 3), 1, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.PReLU(64),
        )
        units: list[nn.Module] = []
        for in_channels, depth, count in IR50_STAGES:
            units.append(BasicBlockIR(in_channels, depth, 2))
            units.extend(BasicBlockIR(depth, depth, 1) for _ in range(count - 1))
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.4),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, EMBEDDING_SIZE),
            nn.BatchNorm1d(EMBEDDING_SIZE, affine=False),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.output_layer(self.body(self.input_layer(x)))
        norm = torch.norm(x, 2, 1, True)
        return x / norm, norm


def load_adaface(path: Path, device: torch.device | str = "cpu") -> IR50:
    """Load IR-50 from a Lightning checkpoint (keys prefixed ``model.``), strictly."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint)
    prefix = "model."
    weights = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    model = IR50()
    model.load_state_dict(weights, strict=True)
    return model.eval().to(device)


def save_adaface_checkpoint(model: IR50, path: Path) -> None:
    """Write a checkpoint in the official layout (used to make test weights)."""
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state}, path)
