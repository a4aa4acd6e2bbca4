"""Should MTCNN see the photo as it is or a copy with its luminance histogram equalised (issue 16)? The
chip is cut from the photo either way; only where the detector places the box and the landmarks
differs. With ``equalize`` the copy is tried first and the photo itself only when the copy shows no
face; without it the photo alone is used (no retry).

The choice is made on LFW folds 1-4 only, never on a test fold or CFP: their 2,400 pairs as
photographed, as tight 112x112 ArcFace crops and as relit face-filling crops (bench/proxies.py makes
both). Each setting's threshold is the best-accuracy one on fold 9's pairs. Reported: accuracy at
that threshold, AUC and TAR at FAR 1e-3 over the pairs whose photos both settings found faces in, and
the photos without a face.
"""

from __future__ import annotations

from pathlib import Path

import common
import numpy as np
from proxies import make_proxies

from facever.model.detection import DetectorConfig
from facever.model.images import read_image
from facever.model.runtime import FacePipeline
from facever.training.evaluation.lfw import LFW, Pair
from facever.training.evaluation.protocol import auc, best_threshold, tar_at_far

SELECTION_FOLDS = (1, 2, 3, 4)
SETTINGS = {"photo as it is": False, "equalised copy first": True}
VERSION = 1  # of the embeddings cached under .cache/equalise/


def embeddings(pipeline: FacePipeline, paths: dict[str, Path], cache: Path, tag: str) -> dict:
    """Key -> the chosen face's embedding (None without a face), cached per setting and set."""
    file = cache / "equalise" / f"{tag}-v{VERSION}.npz"
    return common.cached_per_key(file, paths, lambda path: pipeline.embed_chosen(read_image(path))[0], tag)


def scores(vectors: dict, pairs: list[Pair]) -> np.ndarray:
    return np.array(
        [
            np.nan
            if vectors[p.first] is None or vectors[p.second] is None
            else float(vectors[p.first] @ vectors[p.second])
            for p in pairs
        ]
    )


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "equalise")
    parser.add_argument("--cache", type=Path, default=common.REPO / ".cache")
    args = parser.parse_args()
    run = common.Run("equalise", args)
    pipelines = {
        name: FacePipeline(args.model, "cpu", 0, DetectorConfig(equalize=flag), detection_device="cpu")
        for name, flag in SETTINGS.items()
    }
    lfw = LFW(args.data)
    calibration = [p for p in lfw.pairs() if p.fold == 9]
    selection = [p for p in lfw.pairs() if p.fold in SELECTION_FOLDS]
    if args.smoke:
        calibration, selection = calibration[::40], selection[::80]
    same9 = np.array([p.same for p in calibration])
    thresholds = {}
    for name, pipeline in pipelines.items():
        keys9 = {k: lfw.path(k) for p in calibration for k in (p.first, p.second)}
        s = scores(embeddings(pipeline, keys9, args.cache, f"{name}-lfw-fold-9"), calibration)
        found = ~np.isnan(s)
        thresholds[name] = best_threshold(s[found], same9[found])[0]
    originals = {k: lfw.path(k) for p in selection for k in (p.first, p.second)}
    proxies = make_proxies(pipelines["photo as it is"], originals, args.cache / "proxies" / "lfw-folds-1-4")
    kept = [p for p in selection if p.first in proxies["tight"] and p.second in proxies["tight"]]
    same = np.array([p.same for p in kept])
    results: dict[str, dict] = {}
    rows = []
    for variant, paths in (("original", originals), *proxies.items()):
        keys = {k: paths[k] for p in kept for k in (p.first, p.second)}
        vectors = {
            name: embeddings(pipeline, keys, args.cache, f"{name}-lfw-folds-1-4-{variant}")
            for name, pipeline in pipelines.items()
        }
        per_setting = {name: scores(v, kept) for name, v in vectors.items()}
        both = np.logical_and.reduce([~np.isnan(s) for s in per_setting.values()])
        results[variant] = {"pairs": len(kept), "pairs_both_found": int(both.sum())}
        for name, s in per_setting.items():
            m = {
                "threshold_fold9": thresholds[name],
                "no_face": sum(v is None for v in vectors[name].values()),
                "photos": len(keys),
                "accuracy": float(np.mean((s[both] >= thresholds[name]) == same[both])),
                "auc": auc(s[both], same[both]),
                "tar_at_far_1e-3": tar_at_far(s[both], same[both], 1e-3)[0],
            }
            results[variant][name] = m
            rows.append(
                [f"LFW folds 1-4, {variant}", name, int(both.sum()), f"{100 * m['accuracy']:.2f}"]
                + [f"{m['auc']:.5f}", f"{100 * m['tar_at_far_1e-3']:.2f}", f"{m['no_face']} of {m['photos']}"]
                + [f"{m['threshold_fold9']:.4f}"]
            )
    table = common.markdown_table(
        [
            "set",
            "MTCNN sees",
            "pairs",
            "accuracy % (fold-9 threshold)",
            "AUC",
            "TAR % at FAR 1e-3",
            "photos without a face",
            "threshold",
        ],
        rows,
    )
    run.finish(
        {"selection_folds": SELECTION_FOLDS, "model": common.model_info(args.model)},
        results,
        {"Equalised copy or the photo, chosen on LFW folds 1-4": table},
    )


if __name__ == "__main__":
    main()
