"""Additive angular margin loss (ArcFace, Deng et al. 2019): a classifier over the training
identities whose target logit is cos(theta + m), scaled by s."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ArcFaceLoss(nn.Module):
    def __init__(self, embedding_size: int, classes: int, scale: float = 32.0, margin: float = 0.3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)
        self.scale = scale
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(embeddings), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cosine.gather(1, labels[:, None]))
        # Past pi - m the margin would make the target logit grow again: fall back to a linear penalty.
        target = torch.where(
            theta < math.pi - self.margin,
            torch.cos(theta + self.margin),
            cosine.gather(1, labels[:, None]) - self.margin * math.sin(self.margin),
        )
        logits = cosine.scatter(1, labels[:, None], target) * self.scale
        return F.cross_entropy(logits, labels)
