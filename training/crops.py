"""A cache of aligned face crops, so that detection runs once per image and not once per epoch."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facever.model.detection import DetectorConfig, FaceDetector
from facever.model.images import read_image
from facever.model.runtime import crop_face


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


def _crop_one(job: tuple[str, int, int, float]) -> tuple[np.ndarray, bool, np.ndarray]:
    path, size, pad, zoom = job
    image = read_image(path)
    faces = _worker_detector.detect(image)
    face = faces[0] if faces else None
    landmarks = face.landmarks if face is not None else np.full((5, 2), np.nan, np.float32)
    return crop_face(image, face, size, pad, zoom), face is not None, landmarks


def load_or_build(
    paths: dict[str, Path],
    size: int,
    pad: int,
    cache_dir: Path,
    zoom: float = 1.0,
    detector: DetectorConfig | None = None,
    workers: int | None = None,
) -> CropCache:
    """Aligned crops for every key in ``paths``, read from ``cache_dir`` when already built."""
    detector = detector or DetectorConfig()
    keys = sorted(paths)
    recipe = {"keys": keys, "size": size, "pad": pad, "detector": asdict(detector), "version": 2}
    if zoom != 1.0:
        recipe["zoom"] = zoom
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    cache_file = Path(cache_dir) / f"crops-{size}-{pad}-{digest}.npz"
    if cache_file.exists():
        data = np.load(cache_file)
        return CropCache(keys, data["crops"], data["found"], data["landmarks"], size, pad)

    jobs = [(str(paths[key]), size, pad, zoom) for key in keys]
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(asdict(detector),)) as pool:
        results = list(
            tqdm(pool.map(_crop_one, jobs, chunksize=32), total=len(jobs), desc="detect+align", unit="img")
        )
    crops = np.stack([r[0] for r in results])
    found = np.array([r[1] for r in results])
    landmarks = np.stack([r[2] for r in results]).astype(np.float32)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp.npz")
    np.savez(tmp, crops=crops, found=found, landmarks=landmarks)
    tmp.replace(cache_file)
    return CropCache(keys, crops, found, landmarks, size, pad)
