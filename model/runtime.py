"""The face pipeline that the service, the evaluation and the benchmarks share:
image -> faces (detection) -> aligned crops (alignment) -> embeddings (ONNX network)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facever.model.alignment import align
from facever.model.card import ModelCard
from facever.model.detection import DetectedFace, DetectorConfig, FaceDetector
from facever.model.embedding import Embedder
from facever.model.face_choice import MultiFacePolicy, choose_face
from facever.model.images import ImageError

log = logging.getLogger("facever.model")


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
        self.template = np.asarray(self.card.alignment.template, np.float64)
        if self.template.shape != (5, 2):
            raise ValueError(f"{model_dir}: the model card's alignment template is not five (x, y) points")
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

    def crop(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The aligned S x S (x 3) crop of ``face``, framed by the card's template."""
        return align(image, face.landmarks, self.template, self.size)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        return self.embedder.embed(crops)

    def choose(self, image: np.ndarray, policy: MultiFacePolicy = "largest") -> DetectedFace:
        """The face the service compares (``choose_face``), or ImageError (no_face, multiple_faces)."""
        return choose_face(self.detect(image), policy)

    def embed_chosen(
        self, image: np.ndarray, policy: MultiFacePolicy = "largest"
    ) -> tuple[np.ndarray | None, DetectedFace | None]:
        """Embedding of the face the service compares; (None, None) where the service would refuse
        the photo (no face, or several under ``single``)."""
        try:
            face = self.choose(image, policy)
        except ImageError:
            return None, None
        return self.embed(self.crop(image, face)[None])[0], face
