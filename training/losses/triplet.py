"""Batch-hard triplet loss (Hermans et al. 2017): for each anchor, its farthest same-person image
and its closest other-person image, hinge at a margin."""

from __future__ import annotations

import torch
from torch import nn

from facever.training.losses.contrastive import pairwise_distances


class BatchHardTripletLoss(nn.Module):
    def __init__(self, margin: float = 0.2):
        super().__init__()
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        distance = pairwise_distances(embeddings)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        positives = same & ~eye
        has_positive = positives.any(1)
        if not has_positive.any():
            return embeddings.new_zeros(())
        hardest_positive = torch.where(positives, distance, torch.zeros_like(distance)).max(1).values
        hardest_negative = torch.where(same, torch.full_like(distance, float("inf")), distance).min(1).values
        losses = torch.relu(hardest_positive - hardest_negative + self.margin)
        return losses[has_positive].mean()
