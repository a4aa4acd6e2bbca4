"""Which landmarks should frame the chip: MTCNN's (today's pipeline) or dlib's 5-point shape predictor
run on MTCNN's box (issue 16)? Same detector, same faces, same network; only the chip differs.

For every photo: MTCNN finds the faces and the service's face choice picks one (a photo without a
face fails its pairs under both). Then
  * mtcnn: the chip framed from MTCNN's five landmarks with the model card's template (the service);
  * dlib-5: MTCNN's box mapped to the box dlib's HOG detector would give (a fit on LFW people of
    folds 1-8, never the test folds), dlib's shape predictor run on it with facever's own reader
    and numpy code (model/landmarks.py), and the chip cut by ``dlib.get_face_chip`` (150 px,
    padding 0.25), as dlib frames it for this network.
Reported on LFW (all ten folds) and CFP FF/FP: AUC, 10-fold accuracy and TAR at FAR 1e-3, failed
pairs counted wrong. An experiment: nothing here changes the service.
"""

from __future__ import annotations

import time
from pathlib import Path

import common
import dlib
import numpy as np

from facever.model.face_choice import choose_face
from facever.model.framing import dlib_box
from facever.model.images import ImageError, decode_image
from facever.model.landmarks import ShapePredictor, intensity
from facever.model.runtime import FacePipeline
from facever.training.evaluation.cfp import CFP
from facever.training.evaluation.lfw import LFW
from facever.training.evaluation.protocol import auc, failed_as_wrong, tar_at_far, ten_fold_accuracy
from facever.training.networks.dlib_shape_predictor import read_shape_predictor

DEFAULT_CFP = common.REPO.parent / "shared" / "data" / "cfp"


def fit_box_map(pipeline: FacePipeline, lfw: LFW, count: int) -> np.ndarray:
    """(4,) a, b, c, d: dlib's box centre = MTCNN's centre + (a w, b h), its size = (c w, d h), as
    medians over LFW photos (people of folds 1-8) where both find one face."""
    detector = dlib.get_frontal_face_detector()
    folds = lfw.fold_identities()
    allowed = set().union(*(folds[k] for k in range(1, 9)))
    rows = []
    for person, keys in lfw.identities().items():
        if person not in allowed:
            continue
        rgb = decode_image(lfw.path(keys[0]).read_bytes())
        boxes, faces = detector(rgb, 0), pipeline.detect(rgb)
        if len(boxes) != 1 or len(faces) != 1:
            continue
        x1, y1, x2, y2 = choose_face(faces).box
        w, h = x2 - x1, y2 - y1
        b = boxes[0]
        rows.append(
            [
                ((b.left() + b.right()) / 2 - (x1 + x2) / 2) / w,
                ((b.top() + b.bottom()) / 2 - (y1 + y2) / 2) / h,
                (b.right() - b.left()) / w,
                (b.bottom() - b.top()) / h,
            ]
        )
        if len(rows) == count:
            break
    return np.median(np.array(rows), axis=0)


def chips(
    pipeline: FacePipeline, predictor: ShapePredictor, mapping: np.ndarray, path: Path
) -> tuple[np.ndarray, np.ndarray] | None:
    """The photo's two chips (mtcnn, dlib-5), or None when no face is found."""
    try:
        rgb = decode_image(path.read_bytes())
        face = choose_face(pipeline.detect(rgb))
    except ImageError:
        return None
    _, chip = dlib_chip(rgb, predictor, dlib_box(face.box, mapping))
    return pipeline.crop(rgb, face), chip


def dlib_chip(
    rgb: np.ndarray, predictor: ShapePredictor, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """dlib's 5 points on ``box`` (x1, y1, x2, y2), found by facever's reader of its shape predictor,
    and the 150 px chip ``dlib.get_face_chip`` cuts from them (padding 0.25): (points, chip)."""
    points = predictor.predict(intensity(rgb), box)
    shape = dlib.full_object_detection(
        dlib.rectangle(*box), [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    )
    return points, np.asarray(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))


def evaluate(pipeline, predictor, mapping, pairs, path_of, limit_s: float) -> dict:
    keys = sorted({key for pair in pairs for key in (pair.first, pair.second)})
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    start = time.perf_counter()
    for key in keys:
        got = chips(pipeline, predictor, mapping, path_of(key))
        if got is not None:
            both = pipeline.embed(np.stack(got))
            embeddings[key] = (both[0], both[1])
        if time.perf_counter() - start > limit_s:
            raise SystemExit(f"stopped after {limit_s} s: pass --limit-s")
    same = np.array([pair.same for pair in pairs])
    folds = np.array([pair.fold for pair in pairs])
    report = {"pairs": len(pairs), "photos": len(keys), "no_face": len(keys) - len(embeddings)}
    for index, name in enumerate(("mtcnn", "dlib-5")):
        scores = np.array(
            [
                float(embeddings[p.first][index] @ embeddings[p.second][index])
                if p.first in embeddings and p.second in embeddings
                else np.nan
                for p in pairs
            ]
        )
        scored = failed_as_wrong(scores, same)
        tenfold = ten_fold_accuracy(scored, same, folds, list(range(1, 11)))
        report[name] = {
            "auc": auc(scored, same),
            "accuracy_mean": tenfold["mean"],
            "accuracy_std": tenfold["std"],
            "tar_at_far_1e-3": tar_at_far(scored, same, 1e-3)[0],
        }
    return report


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "alignment")
    parser.add_argument("--cfp", type=Path, default=DEFAULT_CFP)
    parser.add_argument("--fit-photos", type=int, default=400)
    parser.add_argument("--limit-s", type=float, default=1800)
    args = parser.parse_args()
    run = common.Run("alignment", args)
    pipeline = FacePipeline(args.model, "cpu", 0, detection_device="cpu")
    predictor = read_shape_predictor()
    lfw = LFW(args.data)
    mapping = fit_box_map(pipeline, lfw, 20 if args.smoke else args.fit_photos)
    print(f"alignment: box map {np.round(mapping, 4).tolist()}", flush=True)
    sets = {"LFW": (lfw.pairs(), lfw.path)}
    if args.cfp.exists():
        cfp = CFP(args.cfp)
        sets |= {f"CFP-{p}": (cfp.pairs(p), cfp.path) for p in ("FF", "FP")}
    results = {}
    for name, (pairs, path_of) in sets.items():
        if args.smoke:
            pairs = [p for p in pairs if p.fold <= 2][::60]
        results[name] = evaluate(pipeline, predictor, mapping, pairs, path_of, args.limit_s)
        print(f"alignment: {name}: {results[name]}", flush=True)
    fmt = common.fmt
    rows = [
        [
            name,
            method,
            f"{r[method]['auc']:.4f}",
            f"{100 * r[method]['accuracy_mean']:.2f} ± {100 * r[method]['accuracy_std']:.2f}",
            fmt(100 * r[method]["tar_at_far_1e-3"]),
            r["no_face"],
        ]
        for name, r in results.items()
        for method in ("mtcnn", "dlib-5")
    ]
    table = common.markdown_table(
        ["set", "landmarks", "AUC", "10-fold accuracy %", "TAR % at FAR 1e-3", "photos without a face"], rows
    )
    run.finish(
        {"box_map": mapping, "model": common.model_info(args.model)},
        results,
        {"The chip framed from MTCNN's landmarks or from dlib's 5-point shape predictor": table},
    )


if __name__ == "__main__":
    main()
