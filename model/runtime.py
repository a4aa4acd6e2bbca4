"""The face pipeline that the service, the evaluation and the benchmarks share:
image -> faces (detection) -> aligned crops (alignment) -> embeddings (ONNX network)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facever.model.alignment import align, template
from facever.model.card import ModelCard
from facever.model.detection import DetectedFace, DetectorConfig, FaceDetector
from facever.model.embedding import Embedder

log = logging.getLogger("facever.model")

# Mean MTCNN landmarks over LFW's 250x250 images, as fractions of the image side: where a
# typically framed face sits. Used when no face is found (the documented centre-crop fallback).
TYPICAL_LANDMARKS = np.array(
    [[0.4125, 0.4512], [0.5891, 0.4475], [0.5007, 0.5528], [0.4270, 0.6439], [0.5803, 0.6414]]
)


def fallback_landmarks(shape: tuple[int, ...]) -> np.ndarray:
    """Landmarks for the centre of an image in which no face was found."""
    height, width = shape[:2]
    side = min(height, width)
    offset = np.array([(width - side) / 2, (height - side) / 2])
    return TYPICAL_LANDMARKS * side + offset


def crop_face(
    image: np.ndarray, face: DetectedFace | None, size: int, pad: int = 0, zoom: float = 1.0
) -> np.ndarray:
    """The aligned (size + 2 pad)^2 crop of ``face``, or the centre-crop fallback when ``face`` is None."""
    landmarks = face.landmarks if face is not None else fallback_landmarks(image.shape)
    return align(image, landmarks, template(size, pad, zoom), size + 2 * pad)


class FacePipeline:
    """Detection + alignment + embedding with one model directory (facever.onnx + model_card.json)."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "auto",
        threads: int = 0,
        detector_config: DetectorConfig | None = None,
    ):
        self.card = ModelCard.load(model_dir)
        expected = template(self.card.input.size, zoom=self.card.alignment.zoom)
        if not np.allclose(self.card.alignment.template, expected, atol=1e-3):
            raise ValueError(f"{model_dir}: the model card's alignment template does not match its zoom")
        self.detector = FaceDetector(detector_config or DetectorConfig(), device, threads)
        self.embedder = Embedder(model_dir, device, threads, card=self.card)
        log.info(
            "model %s %s loaded from %s; execution providers: %s",
            self.card.name,
            self.card.version,
            model_dir,
            self.embedder.providers,
        )

    @property
    def providers(self) -> list[str]:
        return self.embedder.providers

    @property
    def size(self) -> int:
        return self.card.input.size

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        return self.detector.detect(image)

    def crop(self, image: np.ndarray, face: DetectedFace | None) -> np.ndarray:
        return crop_face(image, face, self.size, zoom=self.card.alignment.zoom)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        return self.embedder.embed(crops)

    def embed_largest(self, image: np.ndarray) -> tuple[np.ndarray, DetectedFace | None]:
        """Embedding of the largest face, or of the centre crop when none is found (evaluation)."""
        faces = self.detect(image)
        face = faces[0] if faces else None
        return self.embed(self.crop(image, face)[None])[0], face
