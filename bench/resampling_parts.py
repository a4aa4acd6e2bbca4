"""Which of OpenCV's resampling steps moves accuracy (issue 16, 2026-12-06)? Each step of detection and
alignment put back to the Pillow code that came before it, one at a time, with the default model on
LFW folds 1-4 as photographed (threshold from fold 9): the equalisation of the copy MTCNN sees, the
pyramid and crop resizes, the crops alone, and the chip's warp. Prints one line per variant.

    cd bench && ../.venv/bin/python resampling_parts.py pillow opencv equalisation align crops resize

(``pillow``: every step Pillow's; ``opencv``: none; any other name: that step alone Pillow's.) Written
when the model used OpenCV's equalisation; it now uses Pillow's, so ``equalisation`` is today's code.
"""

from __future__ import annotations

import sys
import time

import common
import numpy as np
from PIL import Image, ImageOps

import facever.model.detection as detection
import facever.model.framing as framing
from facever.model.alignment import similarity_transform
from facever.model.images import read_image
from facever.model.runtime import FacePipeline
from facever.training.evaluation.lfw import LFW
from facever.training.evaluation.protocol import auc, best_threshold, tar_at_far


def pillow_equalised(image: np.ndarray) -> np.ndarray:
    y, cb, cr = Image.fromarray(image).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (ImageOps.equalize(y), cb, cr)).convert("RGB"))


def pillow_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.BOX))


def pillow_crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    picture, strip = Image.fromarray(image), Image.new("RGB", (size * len(boxes), size))
    for i, (x1, y1, x2, y2) in enumerate(np.fix(boxes[:, :4]).astype(int)):
        if x2 >= x1 and y2 >= y1:
            crop = picture.crop((x1, y1, x2 + 1, y2 + 1)).resize((size, size), Image.Resampling.BOX)
            strip.paste(crop, (size * i, 0))
    out = np.asarray(strip).reshape(size, len(boxes), size, 3)
    return detection._network_input(out.transpose(1, 2, 0, 3))


def pillow_align(image: np.ndarray, landmarks: np.ndarray, points: np.ndarray, side: int) -> np.ndarray:
    landmarks, picture = np.asarray(landmarks, np.float64), Image.fromarray(image)
    matrix = similarity_transform(landmarks, points)
    scale = float(np.hypot(*matrix[:, 0]))
    if scale < 0.5:
        width, height = picture.size
        shrunk = (max(1, round(width * 2 * scale)), max(1, round(height * 2 * scale)))
        picture = picture.resize(shrunk, Image.Resampling.BOX)
        landmarks = (landmarks + 0.5) * (np.array(shrunk) / (width, height)) - 0.5
        matrix = similarity_transform(landmarks, points)
    (a, b, c), (d, e, f) = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    data = (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))
    return np.asarray(
        picture.transform((side, side), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
    )


STEPS = {  # step: (module, attribute, Pillow's version)
    "equalisation": (detection, "_equalized", pillow_equalised),
    "resize": (detection, "area_resize", pillow_resize),  # the pyramid, max_side and (through _crops) crops
    "crops": (detection, "_crops", pillow_crops),
    "align": (framing, "align", pillow_align),
}
CURRENT = {step: getattr(module, name) for step, (module, name, _) in STEPS.items()}


def use(pillow_steps: set[str]) -> None:
    for step, (module, name, pillow) in STEPS.items():
        setattr(module, name, pillow if step in pillow_steps else CURRENT[step])


def scores(vectors: dict, pairs: list) -> np.ndarray:
    return np.array(
        [
            np.nan
            if vectors[p.first] is None or vectors[p.second] is None
            else float(vectors[p.first] @ vectors[p.second])
            for p in pairs
        ]
    )


def main() -> None:
    lfw = LFW(common.DEFAULT_DATA)
    calibration = [p for p in lfw.pairs() if p.fold == 9]
    selection = [p for p in lfw.pairs() if p.fold in (1, 2, 3, 4)]
    keys = sorted({k for p in calibration + selection for k in (p.first, p.second)})
    images = {k: read_image(lfw.path(k)) for k in keys}
    pipeline = FacePipeline(common.DEFAULT_MODEL, "cpu", 0, detection_device="cpu")
    for variant in sys.argv[1:]:
        use(set(STEPS) if variant == "pillow" else set() if variant == "opencv" else {variant})
        started = time.time()
        vectors = {k: pipeline.embed_chosen(image)[0] for k, image in images.items()}
        s9, same9 = scores(vectors, calibration), np.array([p.same for p in calibration])
        threshold = best_threshold(s9[~np.isnan(s9)], same9[~np.isnan(s9)])[0]
        s, same = scores(vectors, selection), np.array([p.same for p in selection])
        found = ~np.isnan(s)
        tar = tar_at_far(s[found], same[found], 1e-3)[0]
        print(
            f"{variant:14s} accuracy {100 * np.mean((s[found] >= threshold) == same[found]):.2f} "
            f"AUC {auc(s[found], same[found]):.5f} TAR@1e-3 {100 * tar:.2f} "
            f"threshold {threshold:.4f} no face {sum(v is None for v in vectors.values())} "
            f"({time.time() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
