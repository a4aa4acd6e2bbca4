"""A cache of aligned face crops, so that detection runs once per image and not once per epoch.

The face is the one the service would compare (``facever.model.face_choice``: the largest). A photo in
which the detector finds none is kept for the training batches only, cropped where a typical LFW face
sits, and flagged (``found`` False): validation, calibration and evaluation count it as the service
does, a failed photo.

Crops are kept as luma: the training images (the LFW copy) are grayscale, so nothing is lost, and a
network that takes RGB gets the grey crop on its three channels (``data.to_channels``).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facever.model.alignment import align, template
from facever.model.detection import DetectorConfig, FaceDetector
from facever.model.face_choice import choose_face
from facever.model.images import ImageError, read_image, to_luma
from facever.training.cache import save_npz

# Mean MTCNN landmarks over LFW's 250x250 images, as fractions of the image side: where a
# typically framed face sits. Training crops an image without a detected face there.
TYPICAL_LANDMARKS = np.array(
    [[0.4125, 0.4512], [0.5891, 0.4475], [0.5007, 0.5528], [0.4270, 0.6439], [0.5803, 0.6414]]
)


def fallback_landmarks(shape: tuple[int, ...]) -> np.ndarray:
    """Landmarks for the centre of an image in which no face was found."""
    height, width = shape[:2]
    side = min(height, width)
    offset = np.array([(width - side) / 2, (height - side) / 2])
    return TYPICAL_LANDMARKS * side + offset


@dataclass
class CropCache:
    keys: list[str]
    crops: np.ndarray  # (N, side, side) uint8, side = size + 2 * pad
    found: np.ndarray  # (N,) bool: a face was detected (else the centre-crop fallback)
    landmarks: np.ndarray  # (N, 5, 2) in the original image, NaN where not found
    size: int
    pad: int

    def index(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.keys)}


_worker_detector: FaceDetector | None = None


def _init_worker(config: dict) -> None:
    global _worker_detector
    _worker_detector = FaceDetector(DetectorConfig(**config), device="cpu", threads=1)


def _crop_one(job: tuple[str, list, int]) -> tuple[np.ndarray, bool, np.ndarray]:
    path, points, side = job
    image = read_image(path)
    assert _worker_detector is not None, "the pool's initializer makes the detector"
    try:
        landmarks, found = choose_face(_worker_detector.detect(image)).landmarks, True
    except ImageError:  # no face: a training example all the same, framed as a typical LFW face
        landmarks, found = fallback_landmarks(image.shape), False
    crop = to_luma(align(image, landmarks, np.asarray(points), side))
    return crop, found, landmarks if found else np.full((5, 2), np.nan, np.float32)


def load_or_build(
    paths: dict[str, Path],
    size: int,
    pad: int,
    cache_dir: Path,
    zoom: float = 1.0,
    detector: DetectorConfig | None = None,
    workers: int | None = None,
    points: np.ndarray | None = None,
) -> CropCache:
    """Aligned crops for every key in ``paths``, read from ``cache_dir`` when already built.

    ``points``: the five template points in the (size + 2 pad)^2 crop; default the ArcFace layout.
    """
    detector = detector or DetectorConfig()
    keys = sorted(paths)
    side = size + 2 * pad
    if points is None:
        points = template(size, pad, zoom)
    points = np.round(np.asarray(points, np.float64), 4).tolist()
    recipe = {"keys": keys, "side": side, "points": points, "detector": asdict(detector), "version": 3}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cache_file = Path(cache_dir) / f"crops-{size}-{pad}-{digest}.npz"
    if cache_file.exists():
        data = np.load(cache_file)
        return CropCache(keys, data["crops"], data["found"], data["landmarks"], size, pad)

    jobs = [(str(paths[key]), points, side) for key in keys]
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(asdict(detector),)) as pool:
        results = list(
            tqdm(pool.map(_crop_one, jobs, chunksize=32), total=len(jobs), desc="detect+align", unit="img")
        )
    crops = np.stack([r[0] for r in results])
    found = np.array([r[1] for r in results])
    landmarks = np.stack([r[2] for r in results]).astype(np.float32)
    save_npz(cache_file, crops=crops, found=found, landmarks=landmarks)
    return CropCache(keys, crops, found, landmarks, size, pad)
