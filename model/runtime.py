"""The face pipeline that the service, the evaluation and the benchmarks share:
image -> faces (detection) -> aligned crops (alignment) -> embeddings (ONNX network)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from facever.model.card import ModelCard
from facever.model.detection import CUDA_CANVAS, DetectedFace, DetectorConfig, FaceDetector
from facever.model.embedding import Embedder
from facever.model.face_choice import MultiFacePolicy, choose_face
from facever.model.framing import Framer
from facever.model.images import ImageError

log = logging.getLogger("facever.model")

Device = Literal["auto", "cpu", "cuda"]


class FacePipeline:
    """Detection + alignment + embedding with one model directory (facever.onnx + model_card.json)."""

    def __init__(
        self,
        model_dir: str | Path,
        device: Device = "auto",
        threads: int = 0,
        detector_config: DetectorConfig | None = None,
        detection_device: Device = "auto",
        detection_batch: int = 2,
    ):
        """``device`` runs the embedding; ``detection_device`` the detector: ``auto`` puts it on the CPU
        unless the embedding runs on CUDA, and then wherever it measured faster here, now, with CUDA
        timed on ``detection_batch`` photos at once (a verify's two, or the service's batches). On
        CUDA the detector runs P-Net on fixed canvases (DetectorConfig.canvas), unless one is given."""
        self.card = ModelCard.load(model_dir)
        self.framer = Framer(self.card, model_dir)
        self.embedder = Embedder(model_dir, device, threads, card=self.card)
        config = detector_config or DetectorConfig()
        self.detection_ms: dict[str, float] = {}  # the start-up measurement behind detection_device=auto
        if detection_device == "auto" and self.embedder.on_gpu:
            self.detector, self.detection_ms = _fastest_detector(config, threads, detection_batch)
        else:
            wanted = "cpu" if detection_device == "auto" else detection_device
            self.detector = FaceDetector(detector_config_for(config, wanted), wanted, threads)
        log.info(
            "model %s %s loaded from %s; execution providers: detection %s, embedding %s",
            self.card.name,
            self.card.version,
            model_dir,
            self.detector.providers,
            self.embedder.providers,
        )

    @property
    def providers(self) -> list[str]:
        """The embedding's execution providers, preferred first."""
        return self.embedder.providers

    @property
    def stage_providers(self) -> dict[str, str]:
        """The execution provider each stage runs on."""
        return {"detection": self.detector.providers[0], "embedding": self.embedder.providers[0]}

    @property
    def size(self) -> int:
        return self.card.input.size

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        return self.detector.detect(image)

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """``detect`` for several images, each stage run once for all of them (what a GPU needs)."""
        return self.detector.detect_many(images)

    def views(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """(V, S, S, 3): the chips of ``face`` the network embeds, one per view of the card."""
        return self.framer.views_of(image, face)

    def crop(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The S x S x 3 chip of the card's first view (quality, the crop shown, int8 calibration)."""
        return self.framer.first_view(image, face)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) chips or (N, V, S, S, 3) views -> (N, D) unit embeddings."""
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
        return self.embed(self.views(image, face)[None])[0], face


def detector_config_for(config: DetectorConfig, device: str) -> DetectorConfig:
    """On CUDA, P-Net on the canvases of CUDA_CANVAS and max_side, unless the config names its own."""
    if device == "cuda" and not config.canvas:
        smaller = tuple(side for side in CUDA_CANVAS if side < config.max_side)
        return replace(config, canvas=(*smaller, config.max_side))
    return config


def _fastest_detector(
    config: DetectorConfig, threads: int, batch: int
) -> tuple[FaceDetector, dict[str, float]]:
    """The detector on CUDA or on the CPU, whichever detects faster on this machine: MTCNN's many
    small runs can make the GPU slower than the CPU (BENCHMARKS.md). The CPU is timed one photo at a
    time (each core takes its own), CUDA on ``batch`` photos at once, as each will run."""
    images = _timing_images()
    timings, detectors = {}, {}
    for device, together in (("cpu", 1), ("cuda", batch)):
        detector = FaceDetector(detector_config_for(config, device), device, threads)
        timings[device] = _median_detection_ms(detector, images, together)
        detectors[device] = detector
    chosen = min(timings, key=lambda device: timings[device])
    log.info(
        "face detection: %.1f ms a photo on the CPU, %.1f ms on CUDA (start-up measurement): runs on %s",
        timings["cpu"],
        timings["cuda"],
        chosen.upper(),
    )
    return detectors[chosen], timings


def _timing_images() -> list[np.ndarray]:
    """Photo-sized images of smooth random shapes (P-Net finds candidates in them, as in photos)."""
    rng = np.random.default_rng(0)
    images = []
    for width, height in ((250, 250), (640, 480)):
        small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
        images.append(np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)))
    return images


def _median_detection_ms(
    detector: FaceDetector, images: list[np.ndarray], together: int = 1, runs: int = 5
) -> float:
    """Milliseconds a photo, each of ``images`` detected in calls of ``together`` copies of it."""
    for image in images * 2:  # warm-up: first runs of each shape
        detector.detect_many([image] * together)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        for image in images:
            detector.detect_many([image] * together)
        seconds.append((time.perf_counter() - start) / (len(images) * together))
    return float(np.median(seconds) * 1000)
