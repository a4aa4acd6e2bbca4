"""Uploaded image bytes -> the chosen face and its embedding, off the event loop.

Decoding, detection and embedding are CPU (or GPU) bound, so they run in worker threads; a
capacity limiter lets at most FACEVER_INFERENCE_WORKERS images be worked on at once (onnxruntime
sessions are safe to run from several threads), and when FACEVER_MAX_QUEUE requests are already
waiting for a slot, further ones are refused with 503 rather than piling up in memory. With a
batching window (FACEVER_BATCH_WINDOW_MS; off by default, as measured) the faces of concurrent
requests are embedded together, and with a detection window (FACEVER_DETECTION_BATCH_WINDOW_MS) their
photos are detected together (facever.model.batching): what a GPU needs, where the cost is per run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import TypeVar

import anyio
import numpy as np

from facever.app import metrics
from facever.app.errors import ApiError, api_error_from_image
from facever.model.batching import Batcher, Ticket, join_lists
from facever.model.detection import DetectedFace
from facever.model.errors import ErrorCode
from facever.model.face_choice import MultiFacePolicy, choose_face
from facever.model.images import DecodedImage, ImageError, ImageLimits, load_image, open_image
from facever.model.quality import FaceQuality, assess
from facever.model.runtime import FacePipeline

T = TypeVar("T")

# An image of more pixels than this is "large": decoding it can take up to ~5 bytes a pixel at full
# size before it is reduced (a 40 MP PNG: 160 MB as RGBA), so only LARGE_DECODES of them are decoded
# at the same time, whatever the number of inference workers; the rest wait their turn.
LARGE_IMAGE_PIXELS = 4_000_000
LARGE_DECODES = 1


def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0): hand freed heap memory back to the system (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


release_memory = _malloc_trim()


@dataclass(frozen=True)
class Upload:
    """One image of a request: its bytes, or the reason it could not even be read (bad base64)."""

    field: str
    filename: str | None
    data: bytes = b""
    error: ImageError | None = None


@dataclass(frozen=True)
class AnalysedFace:
    embedding: np.ndarray  # (D,) float32 unit vector
    face: DetectedFace
    faces_found: int
    width: int
    height: int
    quality: FaceQuality | None = field(default=None, compare=False)  # set by FaceAnalyser
    crop: np.ndarray | None = field(default=None, repr=False, compare=False)  # aligned S x S x 3, uint8


@dataclass
class Timings:
    queue: float = 0.0
    decode: float = 0.0
    detect: float = 0.0
    embed: float = 0.0

    def as_ms(self) -> dict[str, float]:
        return {name: round(seconds * 1000, 2) for name, seconds in vars(self).items()}


@dataclass
class Analysis:
    results: list[AnalysedFace | ImageError]  # one per upload, in order
    timings: Timings = field(default_factory=Timings)


class FaceAnalyser:
    def __init__(
        self,
        pipeline: FacePipeline,
        limits: ImageLimits,
        workers: int,
        max_queue: int,
        batch_window_s: float = 0.0,
        max_batch: int = 64,
        detection_window_s: float = 0.0,
        max_detection_batch: int = 16,
    ):
        self.pipeline = pipeline
        self.limits = limits
        self.max_queue = max_queue
        self.limiter = anyio.CapacityLimiter(workers)
        # Threads that detect a request's second and further photos while its worker detects the first.
        self.helpers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facever-detect")
        self.batcher = Batcher(pipeline.embed, batch_window_s, max_batch) if batch_window_s > 0 else None
        self.detection_batcher = (
            Batcher(pipeline.detect_many, detection_window_s, max_detection_batch, join=join_lists)
            if detection_window_s > 0
            else None
        )
        self.large_decodes = threading.BoundedSemaphore(LARGE_DECODES)
        # The detector works on images of at most this side; larger ones are reduced while decoded
        # (never below it), and face coordinates are mapped back to the original's pixels.
        self.working_side = pipeline.detector.config.max_side

    def close(self) -> None:
        for batcher in (self.batcher, self.detection_batcher):
            if batcher is not None:
                batcher.close()
        self.helpers.shutdown(wait=False, cancel_futures=True)

    async def run(self, function: Callable[..., T], *args) -> T:
        """Run blocking ``function`` in a worker thread, within the inference concurrency limit."""
        if self.max_queue and self.limiter.statistics().tasks_waiting >= self.max_queue:
            raise ApiError(
                503,
                ErrorCode.OVERLOADED,
                "too many requests are waiting for inference; retry shortly",
                {"Retry-After": "1"},
            )
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)

    async def analyse(self, uploads: Sequence[Upload], policy: MultiFacePolicy) -> Analysis:
        queued = time.perf_counter()
        analysis = await self.run(self._analyse, uploads, policy, queued)
        for result in analysis.results:
            if isinstance(result, ImageError):
                metrics.IMAGES_REJECTED.labels(result.code).inc()
        return analysis

    def _analyse(self, uploads: Sequence[Upload], policy: MultiFacePolicy, queued: float) -> Analysis:
        timings = Timings(queue=time.perf_counter() - queued)
        metrics.INFERENCE_WAIT_SECONDS.observe(timings.queue)
        results: list[AnalysedFace | ImageError] = []
        pending: list[tuple[int, AnalysedFace]] = []  # results still waiting for their embedding
        views = []  # per face, the chips the network embeds (V, S, S, 3)
        # Announced to the batchers before decoding, so that a batch waits for these photos and crops
        # (within its window) rather than leaving just before they arrive.
        with (
            self.batcher.coming() if self.batcher else nullcontext() as ticket,
            self.detection_batcher.coming() if self.detection_batcher else nullcontext() as detection_ticket,
        ):
            if detection_ticket is None and not self.pipeline.detector.on_gpu and self._cores_free(uploads):
                detections = self._detect_side_by_side(uploads, policy, timings)
            else:
                detections = self._detect_together(uploads, policy, timings, detection_ticket)
            for detected in detections:
                if isinstance(detected, ImageError):
                    results.append(detected)
                    continue
                face, face_views = detected
                pending.append((len(results), face))
                results.append(face)
                views.append(face_views)
            if not views:
                return Analysis(results, timings)
            start = time.perf_counter()
            embed = ticket.submit if ticket is not None else self.pipeline.embed
            embeddings = embed(np.stack(views))
            timings.embed = time.perf_counter() - start
            metrics.INFERENCE_SECONDS.labels("embed").observe(timings.embed)
            metrics.FACES_EMBEDDED.inc(len(views))
        for (index, face), embedding in zip(pending, embeddings, strict=True):
            results[index] = replace(face, embedding=embedding)
        return Analysis(results, timings)

    def _cores_free(self, uploads: Sequence[Upload]) -> bool:
        """Whether a request's photos may be detected side by side: while some inference workers are idle
        and no request waits for one. Under load every core is busy with a request already, and an
        extra thread would only take turns with them."""
        # Read from a worker thread without the event loop: an estimate, which is all this needs.
        load = self.limiter.statistics()
        return len(uploads) >= 2 and load.total_tokens - load.borrowed_tokens >= 1 and not load.tasks_waiting

    def _detect_side_by_side(
        self, uploads: Sequence[Upload], policy: MultiFacePolicy, timings: Timings
    ) -> list[tuple[AnalysedFace, np.ndarray] | ImageError]:
        """Every upload's face and crop (or its ImageError), in order, each photo decoded and detected
        in its own thread (the first in this one, the others in helper threads), so that a verify takes
        about as long as one photo rather than two when cores are free."""

        def one(upload: Upload) -> tuple[tuple[AnalysedFace, np.ndarray] | ImageError, Timings]:
            own = Timings()
            try:
                return self._detect(upload, policy, own), own
            except ImageError as error:
                return error, own

        others = [self.helpers.submit(one, upload) for upload in uploads[1:]]
        outcomes = [one(uploads[0])] + [future.result() for future in others]
        for _, own in outcomes:
            timings.decode += own.decode
            timings.detect += own.detect
        return [result for result, _ in outcomes]

    def _detect_together(
        self, uploads: Sequence[Upload], policy: MultiFacePolicy, timings: Timings, ticket: Ticket | None
    ) -> list[tuple[AnalysedFace, np.ndarray] | ImageError]:
        """Every upload's face and crop (or its ImageError), in order, the photos detected in one call
        (with other requests' photos, through ``ticket``): each stage runs once for all of them, which a
        GPU needs, and which on a busy CPU makes a verify cheaper than its photos one after the other
        (6 % less server CPU, bench/ab.py), with the same faces."""
        decoded: list[DecodedImage | ImageError] = []
        for upload in uploads:
            try:
                decoded.append(self._decoded(upload, timings))
            except ImageError as error:
                decoded.append(error)
        images = [image.pixels for image in decoded if not isinstance(image, ImageError)]
        start = time.perf_counter()
        found = ticket.submit(images) if ticket is not None else self.pipeline.detect_many(images)
        elapsed = time.perf_counter() - start
        timings.detect += elapsed
        metrics.INFERENCE_SECONDS.labels("detect").observe(elapsed)
        faces = iter(found)
        results: list[tuple[AnalysedFace, np.ndarray] | ImageError] = []
        for image in decoded:
            try:
                if isinstance(image, ImageError):
                    raise image
                results.append(self._chosen(image, next(faces), policy))
            except ImageError as error:
                results.append(error)
        return results

    def _decoded(self, upload: Upload, timings: Timings) -> DecodedImage:
        if upload.error is not None:
            raise upload.error
        start = time.perf_counter()
        decoded = self._decode(upload.data)
        elapsed = time.perf_counter() - start
        timings.decode += elapsed
        metrics.INFERENCE_SECONDS.labels("decode").observe(elapsed)
        return decoded

    def _detect(
        self, upload: Upload, policy: MultiFacePolicy, timings: Timings
    ) -> tuple[AnalysedFace, np.ndarray]:
        """The chosen face (its embedding still empty, its crop the first view) and the views the network
        embeds (V, S, S, 3), or ImageError."""
        decoded_image = self._decoded(upload, timings)
        start = time.perf_counter()
        faces = self.pipeline.detect(decoded_image.pixels)
        elapsed = time.perf_counter() - start
        timings.detect += elapsed
        metrics.INFERENCE_SECONDS.labels("detect").observe(elapsed)
        return self._chosen(decoded_image, faces, policy)

    def _chosen(
        self, decoded_image: DecodedImage, faces: list[DetectedFace], policy: MultiFacePolicy
    ) -> tuple[AnalysedFace, np.ndarray]:
        """The face the policy picks among ``faces`` and its views, or ImageError."""
        image = decoded_image.pixels
        face = choose_face(faces, policy)
        views = self.pipeline.views(image, face)
        crop = views[0]
        chosen = AnalysedFace(
            np.empty(0, np.float32),
            _in_original_pixels(face, decoded_image),
            len(faces),
            decoded_image.width,
            decoded_image.height,
            crop=crop,
        )
        # the size in the original's pixels, the rest from the crop the model sees
        chosen = replace(chosen, quality=assess(chosen.face, crop))
        return chosen, views

    def _decode(self, data: bytes) -> DecodedImage:
        """Decode (reduced to the detector's working size); large images one at a time."""
        image = open_image(data, self.limits)
        width, height = image.size
        if width * height <= LARGE_IMAGE_PIXELS:
            return load_image(image, self.working_side)
        with self.large_decodes:
            try:
                return load_image(image, self.working_side)
            finally:
                image.close()
                del image
                release_memory()


def _in_original_pixels(face: DetectedFace, image: DecodedImage) -> DetectedFace:
    """A face found in a reduced image, in the pixels of the original image."""
    sx, sy = image.scale_x, image.scale_y
    if sx == 1.0 and sy == 1.0:
        return face
    x1, y1, x2, y2 = face.box
    return replace(
        face,
        box=(x1 * sx, y1 * sy, x2 * sx, y2 * sy),
        landmarks=(face.landmarks * np.array([sx, sy], np.float32)).astype(np.float32),
    )


def every_face(analysis: Analysis, uploads: Sequence[Upload]) -> list[AnalysedFace]:
    """For endpoints that need every image: their faces, or the first rejected image as an API error
    naming its field."""
    faces = []
    for upload, result in zip(uploads, analysis.results, strict=True):
        if isinstance(result, ImageError):
            raise api_error_from_image(result, upload.field)
        faces.append(result)
    return faces
