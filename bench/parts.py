"""Face parts taken for faces (issue 16, point 2): in a small photo nearly filled by the face, MTCNN's
first pass may return a cheek or an eye. The detector's part check (DetectorConfig.part_check_*) runs
the framed second pass too when the first pass's largest face covers under 15 % of an image no longer
than 400 px, and takes the second pass's face when it is at least twice as large and holds the first
one's centre.

Measured on face-filling crops made from the first photo of LFW people of folds 1-8 (never a test
fold), where the true landmark positions are known (the crop is cut from the photo's own landmarks):
168x192 greyscale crops at zooms 1.0-2.0 of the relit proxy's framing, plainly lit and lit from one
side, and 112x112 tight ArcFace crops. A face is misplaced when its landmarks are off by more than
half the eye distance on average. Also: how often the check runs on ordinary photos (LFW folds 1-4 as
photographed), and what it costs there.
"""

from __future__ import annotations

import dataclasses
import time

import common
import numpy as np
from PIL import Image
from proxies import GAMMA, RAMP_FLOOR
from tqdm import tqdm

from facever.model.alignment import TEMPLATE_112, align
from facever.model.detection import DetectorConfig, FaceDetector
from facever.model.face_choice import choose_face
from facever.model.images import ImageError, read_image
from facever.training.evaluation.lfw import LFW

ZOOMS = (1.0, 1.3, 1.6, 2.0)
MISPLACED = 0.5  # mean landmark error, in eye distances


def crops(rgb: np.ndarray, landmarks: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(kind, crop, the true landmark positions in it)."""
    out = []
    for zoom in ZOOMS:
        points = ((TEMPLATE_112 - 56) * zoom + 56) * 1.5 + (12.0, 0.0)
        square = align(rgb, landmarks, points, 192)[:, 12:180]
        grey = np.asarray(Image.fromarray(square).convert("L"), np.float64) / 255
        for light in ("plain", "side-lit"):
            lit = grey if light == "plain" else (grey * np.linspace(1.0, RAMP_FLOOR, 168)[None]) ** GAMMA
            image = np.repeat(np.round(lit * 255).astype(np.uint8)[..., None], 3, axis=2)
            out.append((f"168x192 zoom {zoom} {light}", image, points - (12.0, 0.0)))
    out.append(("112x112 tight", align(rgb, landmarks, TEMPLATE_112, 112), TEMPLATE_112))
    return out


def error(face, truth: np.ndarray) -> float:
    eyes = float(np.hypot(*(truth[1] - truth[0])))
    return float(np.linalg.norm(face.landmarks - truth, axis=1).mean()) / eyes


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "parts")
    parser.add_argument("--people", type=int, default=800, help="LFW people of folds 1-8 (first photo each)")
    args = parser.parse_args()
    run = common.Run("parts", args)
    config = DetectorConfig()
    detectors = {
        "part check": FaceDetector(config, "cpu", 1),
        "no part check": FaceDetector(dataclasses.replace(config, part_check_coverage=0.0), "cpu", 1),
    }
    lfw = LFW(args.data)
    folds = lfw.fold_identities()
    allowed = set().union(*(folds[k] for k in range(1, 9)))
    people = sorted(p for p in lfw.identities() if p in allowed)[: 12 if args.smoke else args.people]
    counts: dict[str, dict[str, list[int]]] = {}  # kind -> detector -> [crops, misplaced, no face]
    examples = []
    for person in tqdm(people, desc="crops", unit="person"):
        key = lfw.identities()[person][0]
        rgb = read_image(lfw.path(key))
        try:
            face = choose_face(detectors["part check"].detect(rgb))
        except ImageError:
            continue
        for kind, image, truth in crops(rgb, face.landmarks):
            errors = {}
            for name, detector in detectors.items():
                row = counts.setdefault(kind, {}).setdefault(name, [0, 0, 0])
                row[0] += 1
                found = detector.detect(image)
                if not found:
                    row[2] += 1
                    continue
                errors[name] = error(found[0], truth)
                row[1] += errors[name] > MISPLACED
            if errors.get("no part check", 0) > MISPLACED or errors.get("part check", 0) > MISPLACED:
                examples.append({"key": key, "kind": kind, **{k: round(v, 3) for k, v in errors.items()}})
    # how often the check runs on ordinary photos, and its cost there (one core)
    photos = sorted({k for p in lfw.pairs() if p.fold in (1, 2, 3, 4) for k in (p.first, p.second)})
    photos = photos[:20] if args.smoke else photos[:600]
    checked, seconds = 0, {name: [] for name in detectors}
    for key in tqdm(photos, desc="ordinary photos", unit="img"):
        rgb = read_image(lfw.path(key))
        for name, detector in detectors.items():
            start = time.perf_counter()
            found = detector.detect(rgb)
            seconds[name].append(time.perf_counter() - start)
        height, width = rgb.shape[:2]
        checked += (
            bool(found)
            and max(height, width) <= config.part_check_max_side
            and (found[0].area < config.part_check_coverage * height * width)
        )
    ordinary = {
        "photos": len(photos),
        "part_check_ran_share": checked / max(len(photos), 1),
        "ms_median": {name: float(np.median(s) * 1000) for name, s in seconds.items()},
    }
    rows = [[kind, name, row[0], row[1], row[2]] for kind, per in counts.items() for name, row in per.items()]
    totals = {name: [sum(counts[k][name][i] for k in counts) for i in range(3)] for name in detectors}
    rows += [["all crops", name, *total] for name, total in totals.items()]
    table = common.markdown_table(["crops", "detector", "crops", "misplaced faces", "no face"], rows)
    run.finish(
        {"people": len(people), "misplaced_if_error_above": MISPLACED, "config": dataclasses.asdict(config)},
        {"counts": counts, "totals": totals, "examples": examples, "ordinary_photos": ordinary},
        {"Face parts in face-filling crops": table},
    )
    print(f"ordinary photos: {ordinary}")


if __name__ == "__main__":
    main()
