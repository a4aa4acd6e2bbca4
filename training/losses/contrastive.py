"""Contrastive loss (Hadsell, Chopra & LeCun 2006), with facever's label convention:

    y = 0 for a pair of the SAME person, y = 1 for DIFFERENT people, D = Euclidean distance,
    L = (1 - y) * 1/2 * D^2  +  y * 1/2 * max(0, m - D)^2

Same-person pairs are pulled together; different-person pairs are pushed until they are at
least the margin m apart, after which they cost nothing.
"""

from __future__ import annotations

import torch
from torch import nn


def contrastive_terms(distance: torch.Tensor, different: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-pair loss for distances D and labels y (1 = different people, 0 = same person)."""
    different = different.to(distance.dtype)
    pull = (1 - different) * 0.5 * distance.pow(2)
    push = different * 0.5 * torch.clamp(margin - distance, min=0).pow(2)
    return pull + push


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix, with a gradient that stays finite at zero distance."""
    squared = (embeddings.unsqueeze(1) - embeddings.unsqueeze(0)).pow(2).sum(-1)
    return torch.sqrt(squared.clamp(min=1e-12))


class ContrastiveLoss(nn.Module):
    """Contrastive loss over every pair of a batch (a P x K batch gives many pairs of both kinds).

    The same-person and different-person terms are averaged separately and added, so the many
    more different-person pairs do not drown the few same-person ones. With ``hard_negatives``
    the different-person term is averaged over the pairs still inside the margin (the ones that
    carry a gradient), so it does not fade as most pairs become easy.
    """

    def __init__(self, margin: float = 1.0, hard_negatives: bool = True):
        super().__init__()
        self.margin = margin
        self.hard_negatives = hard_negatives

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        distance = pairwise_distances(embeddings)
        upper = torch.triu(torch.ones_like(distance, dtype=torch.bool), diagonal=1)
        different = labels.unsqueeze(0) != labels.unsqueeze(1)
        terms = contrastive_terms(distance, different, self.margin)

        same_pairs = upper & ~different
        different_pairs = upper & different
        if self.hard_negatives:
            different_pairs = different_pairs & (distance < self.margin)
        loss = embeddings.new_zeros(())
        if same_pairs.any():
            loss = loss + terms[same_pairs].mean()
        if different_pairs.any():
            loss = loss + terms[different_pairs].mean()
        return loss
