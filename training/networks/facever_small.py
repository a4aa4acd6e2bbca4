"""The Siamese embedding network: one shared ResNet-style tower, grey crop in, unit vector out.

Both images of a pair go through the same weights; training compares the two embeddings
(contrastive loss on their Euclidean distance) and the service compares them by cosine similarity.
The input is raw pixel values (0..255) so that the exported ONNX file carries its normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """Pre-activation-free basic block (BN after each conv), PReLU, projection shortcut on downsampling."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.PReLU(channels_out),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut: nn.Module
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )
        else:
            self.shortcut = nn.Identity()
        self.activation = nn.PReLU(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))


class EmbeddingNet(nn.Module):
    def __init__(
        self,
        input_size: int = 64,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (1, 2, 2, 1),
        embedding_size: int = 128,
        dropout: float = 0.0,
        stem_stride: int = 1,
    ):
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError("widths and blocks need one entry per stage")
        downsample = stem_stride * 2 ** len(widths)
        if input_size % downsample:
            raise ValueError(f"input_size must be a multiple of {downsample}")
        self.input_size = input_size
        self.input_channels = 1
        self.embedding_size = embedding_size
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.PReLU(widths[0]),
        )
        stages = []
        channels = widths[0]
        for width, count in zip(widths, blocks, strict=False):
            layers = [ResidualBlock(channels, width, 2)]
            layers += [ResidualBlock(width, width, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            channels = width
        self.stages = nn.Sequential(*stages)
        side = input_size // downsample
        # Flatten + linear keeps where on the face each feature was (better than global pooling for faces).
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(channels * side * side, embedding_size),
            nn.BatchNorm1d(embedding_size),
        )

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 1, S, S) raw pixels 0..255 -> (N, D) embedding before normalisation."""
        x = (pixels - 127.5) / 128.0
        return self.head(self.stages(self.stem(x)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(pixels), dim=1)
