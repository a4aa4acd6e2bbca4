"""The embedding network, run from its exported ONNX file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facever.model.card import ONNX_FILE, ModelCard
from facever.model.images import to_luma
from facever.model.onnx_session import bucket, create_session, run_batch, runs_on_gpu


class Embedder:
    def __init__(
        self, model_dir: str | Path, device: str = "auto", threads: int = 0, card: ModelCard | None = None
    ):
        self.model_dir = Path(model_dir)
        self.card = card or ModelCard.load(self.model_dir)
        self.session = create_session(self.model_dir / ONNX_FILE, device, threads)
        self.providers = self.session.get_providers()
        self.on_gpu = runs_on_gpu(self.session)
        self._input = self.session.get_inputs()[0].name

    @property
    def size(self) -> int:
        return self.card.input.size

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB aligned crops -> (N, D) float32 unit vectors.

        A network that takes one channel gets the crops' luma; (N, S, S) grey crops are taken too.
        (N, V, S, S, 3): V views of each face (model/framing.py); a face's embedding is the normalised
        sum of its views' unit embeddings.
        """
        crops = np.asarray(crops)
        if crops.ndim == 5:
            faces, views = crops.shape[:2]
            each = self.embed(crops.reshape(faces * views, *crops.shape[2:]))
            return normalise(each.reshape(faces, views, -1).sum(1))
        if crops.ndim == 3:
            crops = np.repeat(crops[..., None], 3, axis=3)
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"expected (N, {self.size}, {self.size}, 3) crops, got {crops.shape}")
        if not len(crops):
            return np.empty((0, self.card.embedding_size), np.float32)
        rows = to_luma(crops)[:, None] if self.card.input.channels == 1 else crops.transpose(0, 3, 1, 2)
        # Written straight into one float array (the mirror images after the faces): converting first and
        # concatenating after copies the floats twice.
        batch = np.empty((len(rows) * (2 if self.card.flip_test_time else 1), *rows.shape[1:]), np.float32)
        batch[: len(rows)] = rows
        if self.card.flip_test_time:
            batch[len(rows) :] = rows[..., ::-1]
        # On CUDA each new batch size costs a new plan: run in power-of-two sizes (pad_to_bucket).
        embeddings = run_batch(self.session, self._input, batch, pad=self.on_gpu)[0]
        if self.card.flip_test_time:
            embeddings = embeddings[: len(crops)] + embeddings[len(crops) :]
        return normalise(embeddings)

    def warm_up(self, max_batch: int) -> None:
        """Run every batch size the service can send once (on CUDA: each bucket), so that no request
        pays for the first run of its size."""
        runs = max_batch * len(self.card.alignment.views)  # each face's views go through as rows
        sizes = sorted({bucket(n) for n in range(1, runs + 1)}) if self.on_gpu else [1]
        for size in sizes:
            self.embed(np.zeros((size, self.size, self.size, 3), np.uint8))


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
