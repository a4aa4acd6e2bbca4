"""Which views should a face be embedded from (model/framing.py, issue 16): the landmarks chip (MTCNN's
five landmarks onto the card's template), the dlib-5 chip (dlib's 5-point shape predictor on MTCNN's
mapped box, cut as dlib cuts it), or both, their unit embeddings summed?

The choice is made on LFW folds 1-4 only, never on a test fold or CFP: their 2,400 pairs as photographed,
as tight 112x112 ArcFace crops and as relit face-filling crops (bench/proxies.py makes both). Each
framing's threshold is the best-accuracy one on fold 9's pairs (as the card's is calibrated on fold 9's
people). Reported: accuracy at that threshold, AUC and TAR at FAR 1e-3, over the pairs whose two photos
have a face (the same for every framing: the detector is the same). The views' yaw gate is left out.
"""

from __future__ import annotations

from pathlib import Path

import common
import numpy as np
from proxies import make_proxies

from facever.model.card import Dlib5Framing
from facever.model.face_choice import choose_face
from facever.model.framing import Framer
from facever.model.images import ImageError, read_image
from facever.model.runtime import FacePipeline
from facever.training.config import AlignmentConfig
from facever.training.evaluation.lfw import LFW, Pair
from facever.training.evaluation.protocol import auc, best_threshold, tar_at_far
from facever.training.networks.dlib_shape_predictor import read_shape_predictor

SELECTION_FOLDS = (1, 2, 3, 4)
FRAMINGS = ("landmarks", "dlib-5", "both")
VERSION = 1  # of the per-photo records cached under .cache/views/


def framer_of(pipeline: FacePipeline, cache: Path) -> Framer:
    """Both views with the trainer's default box map and no yaw gate, whatever the model's card asks."""
    folder = cache / "views" / "model"
    folder.mkdir(parents=True, exist_ok=True)
    read_shape_predictor().save(folder / "shape_predictor_5.npz")
    card = pipeline.card.model_copy(deep=True)
    card.alignment.views = ["landmarks", "dlib-5"]
    card.alignment.dlib_5 = Dlib5Framing(box_map=AlignmentConfig().dlib_5_box_map, max_yaw=float("inf"))
    return Framer(card, folder)


def embed(pipeline: FacePipeline, framer: Framer, path: Path) -> np.ndarray | None:
    """(2, D): the landmarks and the dlib-5 chip's unit embeddings; None without a face."""
    try:
        rgb = read_image(path)
        face = choose_face(pipeline.detect(rgb))
    except ImageError:
        return None
    return pipeline.embed(framer.views_of(rgb, face))


def records(pipeline, framer, paths: dict[str, Path], cache: Path, tag: str) -> dict[str, np.ndarray | None]:
    file = cache / "views" / f"{tag}-v{VERSION}.npz"
    return common.cached_per_key(file, paths, lambda path: embed(pipeline, framer, path), tag)


def vector(record: np.ndarray, framing: str) -> np.ndarray:
    if framing == "both":
        total = record.sum(0)
        return total / np.linalg.norm(total)
    return record[FRAMINGS.index(framing)]


def scores(recs: dict, pairs: list[Pair], framing: str) -> np.ndarray:
    return np.array([float(vector(recs[p.first], framing) @ vector(recs[p.second], framing)) for p in pairs])


def found(recs: dict, pairs: list[Pair]) -> list[Pair]:
    return [p for p in pairs if recs[p.first] is not None and recs[p.second] is not None]


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "views")
    parser.add_argument("--cache", type=Path, default=common.REPO / ".cache")
    args = parser.parse_args()
    run = common.Run("views", args)
    pipeline = FacePipeline(args.model, "cpu", 0, detection_device="cpu")
    framer = framer_of(pipeline, args.cache)
    lfw = LFW(args.data)
    calibration = [p for p in lfw.pairs() if p.fold == 9]
    selection = [p for p in lfw.pairs() if p.fold in SELECTION_FOLDS]
    if args.smoke:
        calibration, selection = calibration[::40], selection[::80]
    keys9 = {k: lfw.path(k) for p in calibration for k in (p.first, p.second)}
    recs9 = records(pipeline, framer, keys9, args.cache, "lfw-fold-9")
    pairs9 = found(recs9, calibration)
    same9 = np.array([p.same for p in pairs9])
    thresholds = {f: best_threshold(scores(recs9, pairs9, f), same9)[0] for f in FRAMINGS}
    originals = {k: lfw.path(k) for p in selection for k in (p.first, p.second)}
    proxies = make_proxies(pipeline, originals, args.cache / "proxies" / "lfw-folds-1-4")
    kept = [p for p in selection if p.first in proxies["tight"] and p.second in proxies["tight"]]
    results: dict[str, dict] = {}
    rows = []
    for variant, paths in (("original", originals), *proxies.items()):
        keys = {k: paths[k] for p in kept for k in (p.first, p.second)}
        recs = records(pipeline, framer, keys, args.cache, f"lfw-folds-1-4-{variant}")
        pairs = found(recs, kept)
        same = np.array([p.same for p in pairs])
        results[variant] = {"pairs": len(kept), "pairs_found": len(pairs)}
        for framing in FRAMINGS:
            s = scores(recs, pairs, framing)
            m = {
                "threshold_fold9": thresholds[framing],
                "accuracy": float(np.mean((s >= thresholds[framing]) == same)),
                "auc": auc(s, same),
                "tar_at_far_1e-3": tar_at_far(s, same, 1e-3)[0],
            }
            results[variant][framing] = m
            rows.append(
                [f"LFW folds 1-4, {variant}", framing, len(pairs), f"{100 * m['accuracy']:.2f}"]
                + [f"{m['auc']:.5f}", f"{100 * m['tar_at_far_1e-3']:.2f}", f"{m['threshold_fold9']:.4f}"]
            )
    table = common.markdown_table(
        ["set", "framing", "pairs", "accuracy % (fold-9 threshold)", "AUC", "TAR % at FAR 1e-3", "threshold"],
        rows,
    )
    run.finish(
        {"selection_folds": SELECTION_FOLDS, "box_map": AlignmentConfig().dlib_5_box_map},
        results,
        {"Views chosen on LFW folds 1-4": table},
    )


if __name__ == "__main__":
    main()
