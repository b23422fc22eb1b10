"""The FID InceptionV3: the TF "inception-2015-12-05" graph as ported by pytorch-fid.

Module names and parameter shapes follow ``pt_inception-2015-12-05-6726825d.pth``, which
is torchvision's ``Inception3(num_classes=1008, aux_logits=False)`` layout with the
Mixed_5b..5d, 6b..6e, 7b and 7c blocks replaced by the FID variants below. Those differ
from torchvision's blocks only in their pooling branch, so they have identical parameters:

* A, C and the first E block average-pool without counting the zero padding (as TF does);
* the last E block max-pools in its pool branch (a quirk of that TF graph).

FID uses the 2048-d output of the final average pool; ``fc`` exists only so that the
official checkpoint loads strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.inception import BasicConv2d, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the TF graph's 1008-way classifier
INPUT_SIZE = 299


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's SAME-padded average pool divides by the number of real (unpadded) pixels.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool_same(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class FIDInceptionA(InceptionA):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, pool], 1)


class FIDInceptionC(InceptionC):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            dbl = layer(dbl)
        pool = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch7x7, dbl, pool], 1)


class _FIDInceptionE(InceptionE):
    """InceptionE with the pooling of its pool branch chosen by the subclass."""

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        pool = self.branch_pool(self._pool(x))
        return torch.cat([self.branch1x1(x), branch3x3, dbl, pool], 1)


class FIDInceptionE_1(_FIDInceptionE):  # noqa: N801 - the name pytorch-fid and BasicSR use
    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return _tf_avg_pool(x)


class FIDInceptionE_2(_FIDInceptionE):  # noqa: N801
    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return _max_pool_same(x)


class FIDInception3(nn.Module):
    """The whole FID Inception; attribute order gives the checkpoint's key order."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE_1(1280)
        self.Mixed_7c = FIDInceptionE_2(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) in [-1, 1] -> (N, 2048) final average-pool features."""
        for layer in (
            self.Conv2d_1a_3x3,
            self.Conv2d_2a_3x3,
            self.Conv2d_2b_3x3,
            self.maxpool1,
            self.Conv2d_3b_1x1,
            self.Conv2d_4a_3x3,
            self.maxpool2,
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
            self.avgpool,
        ):
            x = layer(x)
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Logits are not used by FID; kept so the module is a complete network.
        return self.fc(self.pool_features(x))


def build_fid_inception() -> FIDInception3:
    """A randomly initialised FID Inception in eval mode (seed torch first for reproducibility).

    He-normal weights keep random-init activations of order one through the 94 layers,
    so tests on an untrained network still see informative features.
    """
    model = FIDInception3()
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model.eval()


_BN_COUNTER = "num_batches_tracked"


def load_inception_state_dict(model: FIDInception3, path: str | Path) -> FIDInception3:
    """Load ``pt_inception-2015-12-05-6726825d.pth`` (or a state dict saved from this module), strictly.

    ``weights_only`` keeps a tampered weights file from running code. The only
    tolerated difference is missing BatchNorm ``num_batches_tracked`` counters, which
    do not affect eval-mode outputs and which some exported checkpoints leave out.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith(_BN_COUNTER) and key not in state:
            state[key] = torch.zeros_like(value)
    model.load_state_dict(state, strict=True)
    return model


class FIDFeatureExtractor(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> (N, 2048) features, as pytorch-fid with ``normalize_input=False``.

    BasicSR (and so the NTIRE fid.py) normalises images to [-1, 1] itself with mean=std=0.5
    and lets the network only resize, bilinearly to 299x299 with ``align_corners=False``.
    """

    def __init__(self, inception: FIDInception3 | None = None) -> None:
        super().__init__()
        self.inception = inception if inception is not None else build_fid_inception()
        self.eval()
        for param in self.parameters():
            param.requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | Path) -> FIDFeatureExtractor:
        return cls(load_inception_state_dict(build_fid_inception(), path))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, H, W) batch, got shape {tuple(x.shape)}")
        # pytorch-fid resizes unconditionally; at 299x299 this is an exact identity.
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.inception.pool_features(x)
