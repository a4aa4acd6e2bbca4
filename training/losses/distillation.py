"""Distillation from a teacher's cached embeddings (dlib's ResNet).

``embedding``: the student's unit vector should point where the teacher's does (1 - cosine).
``relation``: the student's pairwise cosine similarities within the batch should match the
teacher's (mean squared error); this needs no common embedding size.
Images without a teacher embedding (NaN rows) are left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DistillationLoss(nn.Module):
    def __init__(self, mode: str = "embedding"):
        super().__init__()
        if mode not in {"embedding", "relation"}:
            raise ValueError(f"unknown distillation mode {mode!r}")
        self.mode = mode

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        known = ~torch.isnan(teacher).any(1)
        if known.sum() < 2:
            return student.new_zeros(())
        student = F.normalize(student[known], dim=1)
        teacher = F.normalize(teacher[known], dim=1)
        if self.mode == "embedding":
            if student.shape[1] != teacher.shape[1]:
                raise ValueError(
                    "embedding distillation needs the student's size to equal the teacher's (128)"
                )
            return (1 - (student * teacher).sum(1)).mean()
        return F.mse_loss(student @ student.T, teacher @ teacher.T)
