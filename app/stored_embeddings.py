"""Face templates as stored: float32 little-endian bytes, tagged with the model that made them.

Embeddings of different models live in different spaces, so a template is only ever compared with
probes of the model (name and version) that made it; every query filters on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facever.model.card import ModelCard

DTYPE = np.dtype("<f4")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str

    @classmethod
    def of(cls, card: ModelCard) -> ModelRef:
        return cls(card.name, card.version)


def to_bytes(embedding: np.ndarray) -> bytes:
    return np.asarray(embedding, dtype=DTYPE).tobytes()


def from_bytes(blobs: list[bytes], dim: int) -> np.ndarray:
    """Several stored templates -> (N, dim) float32 matrix."""
    if not blobs:
        return np.empty((0, dim), np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype=DTYPE).reshape(len(blobs), dim)
    return matrix.astype(np.float32, copy=True)
