"""Losses as small modules. Contrastive loss is the core objective; the others combine with it."""

from facever.training.losses.arcface import ArcFaceLoss
from facever.training.losses.contrastive import ContrastiveLoss, contrastive_terms, pairwise_distances
from facever.training.losses.distillation import DistillationLoss
from facever.training.losses.triplet import BatchHardTripletLoss

__all__ = [
    "ArcFaceLoss",
    "BatchHardTripletLoss",
    "ContrastiveLoss",
    "DistillationLoss",
    "contrastive_terms",
    "pairwise_distances",
]
