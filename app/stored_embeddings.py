"""Face templates as stored: float32 little-endian bytes, tagged with the model that made them.

Embeddings of different models live in different spaces, so a template is only ever compared with
probes of the model (name and version) that made it; every query filters on both.

Every read and write of a stored template goes through ``TemplateCodec``: with a key ring
(facever.app.template_crypto) the bytes are encrypted, each row naming its key in ``faces.key_id``;
without one, or for a row whose ``key_id`` is NULL (written before a key was set), they are in clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facever.app.template_crypto import KeyRing, TemplateKeyError
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


class StoredRow(Protocol):
    """What a query selects to read templates: Face.id, identity_id, embedding and key_id."""

    id: int
    identity_id: int
    embedding: bytes
    key_id: str | None


@dataclass(frozen=True)
class TemplateCodec:
    """Templates to and from their stored form: encrypted under the ring's current key, or in clear."""

    ring: KeyRing | None = None

    @property
    def encrypts(self) -> bool:
        return self.ring is not None

    def seal(self, embedding: np.ndarray, face_id: int, identity_id: int) -> tuple[bytes, str | None]:
        """(stored bytes, key id or None) of one template of face ``face_id``."""
        return self.seal_bytes(to_bytes(embedding), face_id, identity_id)

    def seal_bytes(self, plain: bytes, face_id: int, identity_id: int) -> tuple[bytes, str | None]:
        if self.ring is None:
            return plain, None
        return self.ring.encrypt(plain, face_id, identity_id)

    def open_bytes(self, row: StoredRow) -> bytes:
        """A row's template in clear (TemplateKeyError, TemplateDecryptionError when it cannot be)."""
        if row.key_id is None:
            return row.embedding
        if self.ring is None:
            raise TemplateKeyError(
                f"face {row.id} is encrypted (key {row.key_id}) but no template key is configured: "
                "set FACEVER_TEMPLATE_KEY"
            )
        return self.ring.decrypt(row.embedding, row.key_id, row.id, row.identity_id)

    def open(self, rows: Sequence[StoredRow], dim: int) -> np.ndarray:
        """Several rows' templates -> (N, dim) float32 matrix."""
        return from_bytes([self.open_bytes(row) for row in rows], dim)
