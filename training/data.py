"""Training data: which LFW people are used for what, identity-balanced batches, augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facever.training.config import AugmentConfig, BatchConfig
from facever.training.evaluation.lfw import LFW


@dataclass(frozen=True)
class Split:
    """People for training, for threshold calibration, and for testing (disjoint)."""

    train: dict[str, list[str]]
    calibration: dict[str, list[str]]
    test: dict[str, list[str]]

    def describe(self) -> dict:
        def count(people):
            return {"people": len(people), "images": sum(len(v) for v in people.values())}

        return {"train": count(self.train), "calibration": count(self.calibration), "test": count(self.test)}


def split_people(lfw: LFW, test_folds: list[int], calibration_folds: list[int]) -> Split:
    folds = lfw.fold_identities()
    test = set().union(*(folds[k] for k in test_folds))
    calibration = set().union(*(folds[k] for k in calibration_folds))
    people = lfw.identities()
    return Split(
        train={p: keys for p, keys in people.items() if p not in test and p not in calibration},
        calibration={p: people[p] for p in sorted(calibration) if p in people},
        test={p: people[p] for p in sorted(test) if p in people},
    )


class PKSampler:
    """Batches of P people x K images each (people with >= 2 images), plus some random images.

    Every batch then holds P * K * (K - 1) / 2 same-person pairs and many different-person pairs.
    """

    def __init__(self, labels: np.ndarray, config: BatchConfig, seed: int):
        self.config = config
        self.rng = np.random.default_rng(seed)
        members: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            members.setdefault(int(label), []).append(index)
        self.by_label = {k: np.array(v) for k, v in members.items()}
        self.multi = np.array([k for k, v in self.by_label.items() if len(v) >= 2])
        self.size = len(labels)

    @property
    def batch_size(self) -> int:
        return self.config.identities * self.config.per_identity + self.config.extra_images

    def batch(self) -> np.ndarray:
        people = self.rng.choice(self.multi, self.config.identities, replace=False)
        indices = []
        for person in people:
            images = self.by_label[int(person)]
            k = self.config.per_identity
            indices.append(self.rng.choice(images, k, replace=len(images) < k))
        indices.append(self.rng.integers(0, self.size, self.config.extra_images))
        return np.concatenate(indices)


def centre_crop(crops: torch.Tensor, size: int) -> torch.Tensor:
    """(N, side, side) uint8 cached crops -> (N, 1, size, size) float pixels: the crop the runtime sees."""
    pad = (crops.shape[-1] - size) // 2
    return crops[:, None, pad : pad + size, pad : pad + size].float()


def to_channels(pixels: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, 1, S, S) grey pixels -> (N, channels, S, S): a network that takes RGB sees grey as R = G = B."""
    return pixels if channels == 1 else pixels.expand(-1, channels, -1, -1).contiguous()


def augment(
    crops: torch.Tensor, size: int, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Random flip, shift, scale and rotation (one affine resample of the padded crop), then
    brightness, contrast and occasional blur. (N, side, side) uint8 -> (N, 1, size, size) float."""
    n, side = crops.shape[0], crops.shape[-1]

    def uniform(low, high):
        return torch.rand(n, generator=generator) * (high - low) + low

    zoom = (size / side) / uniform(1 - config.scale, 1 + config.scale)
    angle = uniform(-config.rotate_degrees, config.rotate_degrees) * (np.pi / 180)
    flip = torch.where(torch.rand(n, generator=generator) < config.flip, -1.0, 1.0)
    shift_x = uniform(-config.shift, config.shift) * 2 * size / side
    shift_y = uniform(-config.shift, config.shift) * 2 * size / side
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift_x], 1), torch.stack([sin * flip, cos, shift_y], 1)], 1
    )
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    pixels = F.grid_sample(
        crops[:, None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )

    contrast = uniform(1 - config.contrast, 1 + config.contrast).view(n, 1, 1, 1)
    brightness = uniform(-config.brightness, config.brightness).view(n, 1, 1, 1) * 128
    mean = pixels.mean(dim=(2, 3), keepdim=True)
    pixels = (pixels - mean) * contrast + mean + brightness

    if config.blur > 0:
        blurred = torch.rand(n, generator=generator) < config.blur
        if blurred.any():
            low = F.interpolate(pixels[blurred], scale_factor=0.5, mode="bilinear", align_corners=False)
            pixels[blurred] = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return pixels.clamp(0, 255)
