"""Which landmarks should frame the chip, per photo (issue 16, point 1): MTCNN's, dlib's 5-point shape
predictor's, or a rule choosing between them, on the originals AND on the tight and relit proxies.

For every photo facever's detector finds the faces and the service's face choice picks one; then
  * mtcnn: the chip framed from MTCNN's five landmarks with the model card's template (today);
  * dlib-5: MTCNN's box mapped to dlib's HOG box convention (bench/alignment.py's fit on LFW folds
    1-8), dlib's shape predictor run on it with facever's numpy code (model/landmarks.py) and the
    chip cut by ``dlib.get_face_chip`` (150 px, padding 0.25), as dlib frames it for this network;
  * rules: per photo, dlib-5 where a measured property of the detection says so, else mtcnn
    (coverage: the face box's share of the image; frontal: the nose's offset from the eyes' middle,
    in eye distances, by MTCNN's landmarks; disagreement: how far MTCNN's eye centres are from dlib's,
    in eye distances). A pair's two photos may be framed differently.
Sets: LFW fold 10, CFP-FF and CFP-FP on the folds given (the CPU is shared), and the tight and relit
proxies (bench/proxies.py) of LFW fold 10 and CFP-FF. Reported on the pairs where facever and dlib
(face_recognition, from bench/accuracy.py's cache) both found the faces, as bench/proxies.py does,
and on all pairs with failed pairs wrong: AUC, accuracy at the card's threshold, TAR at FAR 1e-3.
An experiment: nothing here changes the service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import dlib
import numpy as np
from accuracy import dlib_embeddings
from alignment import dlib_chip
from proxies import cache_prefix, make_proxies

from facever.model.face_choice import choose_face
from facever.model.framing import dlib_box, yaw
from facever.model.images import ImageError, read_image
from facever.model.landmarks import ShapePredictor
from facever.model.matching import is_match
from facever.model.runtime import FacePipeline
from facever.training.config import AlignmentConfig
from facever.training.evaluation.cfp import CFP
from facever.training.evaluation.lfw import LFW, Pair
from facever.training.evaluation.protocol import auc, failed_as_wrong, tar_at_far
from facever.training.networks.dlib_shape_predictor import read_shape_predictor

DEFAULT_CFP = common.REPO.parent / "shared" / "data" / "cfp"
# bench/results/alignment.json's fit (MTCNN box -> dlib HOG box: centre shift and size, in box units).
BOX_MAP = np.array(AlignmentConfig().dlib_5_box_map)
VERSION = 2  # of the per-photo records cached under .cache/framing/


def measure(pipeline: FacePipeline, predictor: ShapePredictor, path: Path) -> dict | None:
    """One photo's two embeddings and the properties a rule may look at; None without a face."""
    try:
        rgb = read_image(path)
        face = choose_face(pipeline.detect(rgb))
    except ImageError:
        return None
    points, chip = dlib_chip(rgb, predictor, dlib_box(face.box, BOX_MAP))
    embeddings = pipeline.embed(np.stack([pipeline.crop(rgb, face), chip]))
    x1, y1, x2, y2 = face.box
    height, width = rgb.shape[:2]
    return {
        "mtcnn": embeddings[0],
        "dlib-5": embeddings[1],
        "coverage": (x2 - x1) * (y2 - y1) / (width * height),
        "yaw": yaw(face.landmarks),
        "disagreement": _disagreement(face.landmarks, points),
        "score": face.score,
    }


_HOG = None


def with_dlib_box(pipeline: FacePipeline, predictor: ShapePredictor, path: Path, record: dict) -> dict:
    """Adds "dlib-5 hog": the dlib-5 chip's embedding when the shape predictor runs on the box of dlib's
    own HOG detector (upsampled once, as face_recognition runs it; its largest face) instead of MTCNN's
    mapped box; NaN where HOG finds no face. Tells whether the box explains dlib's lead."""
    global _HOG
    _HOG = _HOG or dlib.get_frontal_face_detector()
    rgb = read_image(path)
    boxes = _HOG(rgb, 1)
    record = dict(record)
    if not boxes:
        record["dlib-5 hog"] = np.full_like(record["mtcnn"], np.nan)
        return record
    box = max(boxes, key=lambda b: b.area())
    _, chip = dlib_chip(rgb, predictor, (box.left(), box.top(), box.right(), box.bottom()))
    record["dlib-5 hog"] = pipeline.embed(chip[None])[0]
    return record


def _disagreement(landmarks: np.ndarray, points: np.ndarray) -> float:
    """How far MTCNN's eye centres are from dlib's (the middles of its two eye-corner pairs), in eye
    distances: where the two landmark sets disagree, one of them is wrong."""
    ours = landmarks[np.argsort(landmarks[:2, 0])]
    theirs = np.array([points[:2].mean(0), points[2:4].mean(0)])
    theirs = theirs[np.argsort(theirs[:, 0])]
    distance = max(float(np.hypot(*(ours[1] - ours[0]))), 1e-6)
    return float(np.linalg.norm(ours - theirs, axis=1).mean()) / distance


def records(pipeline, predictor, paths: dict[str, Path], cache: Path, tag: str) -> dict[str, dict | None]:
    """Per-photo records, cached under ``cache`` (one npz per set and variant, keeping every key)."""

    def record(path: Path) -> dict | None:
        measured = measure(pipeline, predictor, path)
        return None if measured is None else with_dlib_box(pipeline, predictor, path, measured)

    return common.cached_per_key(cache / "framing" / f"{tag}-v{VERSION}.npz", paths, record, tag)


def _both(record: dict) -> np.ndarray:
    """The two chips' embeddings averaged (and normalised again): both framings at once."""
    total = record["mtcnn"] + record["dlib-5"]
    return total / np.linalg.norm(total)


# name: (where a photo uses the dlib-5 chip, how: "dlib-5" alone, "dlib-5 hog" (framed from dlib's own
# box: an experiment, NaN where HOG finds no face) or "both" averaged with mtcnn's)
RULES: dict[str, tuple[Callable[[dict], bool], str]] = {
    "mtcnn": (lambda r: False, "dlib-5"),
    "dlib-5": (lambda r: True, "dlib-5"),
    **{f"dlib-5 if coverage >= {c}": ((lambda r, c=c: r["coverage"] >= c), "dlib-5") for c in (0.25, 0.45)},
    **{f"dlib-5 if yaw <= {y}": ((lambda r, y=y: r["yaw"] <= y), "dlib-5") for y in (0.05, 0.1, 0.2)},
    **{
        f"dlib-5 if disagreement <= {d}": ((lambda r, d=d: r["disagreement"] <= d), "dlib-5")
        for d in (0.05, 0.1, 0.15)
    },
    "dlib-5 on dlib's box": (lambda r: True, "dlib-5 hog"),
    "both": (lambda r: True, "both"),
    **{f"both if yaw <= {y}": ((lambda r, y=y: r["yaw"] <= y), "both") for y in (0.1, 0.2)},
    "both if disagreement <= 0.1": ((lambda r: r["disagreement"] <= 0.1), "both"),
}
BOOTSTRAP = 1000
# The rules in BENCHMARKS.md's table (the JSON has them all).
TABLE_RULES = (
    "mtcnn",
    "dlib-5",
    "dlib-5 on dlib's box",
    "dlib-5 if coverage >= 0.45",
    "dlib-5 if yaw <= 0.1",
    "dlib-5 if disagreement <= 0.1",
    "both",
    "both if yaw <= 0.2",
)


def vectors(recs: dict[str, dict | None], rule: tuple[Callable[[dict], bool], str]) -> dict[str, np.ndarray]:
    uses, how = rule
    nan = np.full(128, np.nan, np.float32)
    return {
        k: nan if r is None else (r["mtcnn"] if not uses(r) else _both(r) if how == "both" else r[how])
        for k, r in recs.items()
    }


def bootstrap_difference(
    scores: np.ndarray, baseline: np.ndarray, same: np.ndarray, threshold: float
) -> dict:
    """Paired bootstrap over pairs (photos shared between pairs are ignored): the 95 % interval of the
    rule's accuracy and AUC minus mtcnn's."""
    rng = np.random.default_rng(0)
    scores, baseline = failed_as_wrong(scores, same), failed_as_wrong(baseline, same)
    right = (is_match(scores, threshold) == same).astype(np.float64)
    right_base = (is_match(baseline, threshold) == same).astype(np.float64)
    draws = rng.integers(0, len(same), (BOOTSTRAP, len(same)))
    accuracy = (right[draws] - right_base[draws]).mean(1)
    aucs = [
        auc(scores[d], same[d]) - auc(baseline[d], same[d]) for d in draws[:200] if 0 < same[d].sum() < len(d)
    ]
    return {
        "accuracy_difference_95": np.percentile(accuracy, [2.5, 97.5]).tolist(),
        "auc_difference_95": np.percentile(aucs, [2.5, 97.5]).tolist() if aucs else None,
    }


def scores_of(embeddings: dict[str, np.ndarray], pairs: list[Pair], metric: str) -> np.ndarray:
    a = np.stack([embeddings[p.first] for p in pairs]).astype(np.float64)
    b = np.stack([embeddings[p.second] for p in pairs]).astype(np.float64)
    if metric == "cosine":
        return (a * b).sum(1)
    return -np.linalg.norm(a - b, axis=1)


def metrics(scores: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    found = ~np.isnan(scores)
    scored = failed_as_wrong(scores, same)
    return {
        "pairs": int(len(scores)),
        "accuracy_at_card_threshold": float(np.mean(is_match(scored, threshold) == same)),
        "auc": auc(scored, same),
        "tar_at_far_1e-3": tar_at_far(scored, same, 1e-3)[0],
        "found": int(found.sum()),
    }


def evaluate(recs, pairs: list[Pair], dlib_vectors: dict | None, threshold: float) -> dict:
    same = np.array([p.same for p in pairs])
    both = np.ones(len(pairs), bool)
    if dlib_vectors is not None:
        both = ~np.isnan(scores_of(dlib_vectors, pairs, "euclidean"))
    baseline = scores_of(vectors(recs, RULES["mtcnn"]), pairs, "cosine")
    both &= ~np.isnan(baseline)
    out: dict[str, Any] = {
        "pairs": len(pairs),
        "pairs_both_found": int(both.sum()),
        "no_face": sum(r is None for r in recs.values()),
        "photos": len(recs),
        "dlib_uses": {},
        "rules": {},
    }
    for name, rule in RULES.items():
        scores = scores_of(vectors(recs, rule), pairs, "cosine")
        out["rules"][name] = {
            "both_found": metrics(scores[both], same[both], threshold),
            "all_pairs": metrics(scores, same, threshold),
            "versus_mtcnn": bootstrap_difference(scores[both], baseline[both], same[both], threshold),
        }
        out["dlib_uses"][name] = sum(bool(r is not None and rule[0](r)) for r in recs.values())
    if dlib_vectors is not None:
        theirs = scores_of(dlib_vectors, pairs, "euclidean")
        out["dlib_face_recognition"] = {"both_found": metrics(theirs[both], same[both], -0.6)}
    return out


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "framing")
    parser.add_argument("--cfp", type=Path, default=DEFAULT_CFP)
    parser.add_argument("--cache", type=Path, default=common.REPO / ".cache")
    parser.add_argument("--cfp-folds", type=int, nargs="+", default=[1, 2], help="CFP folds to use")
    args = parser.parse_args()
    run = common.Run("framing", args)
    pipeline = FacePipeline(args.model, "cpu", 0, detection_device="cpu")
    predictor = read_shape_predictor()
    threshold = pipeline.card.threshold
    lfw, cfp = LFW(args.data), CFP(args.cfp)
    sets = {
        "LFW fold 10": ([p for p in lfw.pairs() if p.fold == 10], lfw.path, True),
        "CFP-FF": ([p for p in cfp.pairs("FF") if p.fold in args.cfp_folds], cfp.path, True),
        "CFP-FP": ([p for p in cfp.pairs("FP") if p.fold in args.cfp_folds], cfp.path, False),
    }
    results: dict[str, dict] = {}
    for name, (pairs, path_of, with_proxies) in sets.items():
        if args.smoke:
            pairs = pairs[:: max(1, len(pairs) // 8)]
        tag = name.lower().replace(" ", "-")
        originals = {k: path_of(k) for p in pairs for k in (p.first, p.second)}
        variants: dict[str, dict[str, Path]] = {"original": originals}
        kept = pairs
        if with_proxies:
            proxies = make_proxies(pipeline, originals, args.cache / "proxies" / tag)
            kept = [p for p in pairs if p.first in proxies["tight"] and p.second in proxies["tight"]]
            variants |= proxies
        for variant, paths in variants.items():
            keys = sorted({k for p in kept for k in (p.first, p.second)})
            recs = records(pipeline, predictor, {k: paths[k] for k in keys}, args.cache, f"{tag}-{variant}")
            theirs = None
            if with_proxies:  # dlib's descriptors, keyed as bench/proxies.py keys them (its cache)
                prefix = cache_prefix(variant, pipeline)
                built = dlib_embeddings({f"{prefix}/{k}": paths[k] for k in keys}, args.cache)
                theirs = {k[len(prefix) + 1 :]: v for k, v in built.items()}
            results[f"{name} {variant}"] = evaluate(recs, kept, theirs, threshold)
            summary = {
                rule: round(100 * r["both_found"]["accuracy_at_card_threshold"], 2)
                for rule, r in results[f"{name} {variant}"]["rules"].items()
            }
            print(f"framing: {name} {variant}: {json.dumps(summary)}", flush=True)
    pct = lambda value: f"{100 * value:.2f}"  # noqa: E731
    interval = lambda low_high: "{:+.2f} .. {:+.2f}".format(*(100 * x for x in low_high))  # noqa: E731
    rows = []
    for name, r in results.items():
        for rule in TABLE_RULES:
            if rule == "dlib-5 on dlib's box" and "dlib_face_recognition" not in r:
                continue  # HOG finds few profiles: CFP-FP's row would only count its misses
            m = r["rules"][rule]
            b, a = m["both_found"], m["all_pairs"]
            rows.append(
                [
                    name,
                    rule,
                    f"{r['dlib_uses'][rule]} of {r['photos'] - r['no_face']}",
                    r["pairs_both_found"],
                    f"{b['auc']:.4f}",
                    pct(b["accuracy_at_card_threshold"]),
                    pct(b["tar_at_far_1e-3"]),
                    interval(m["versus_mtcnn"]["accuracy_difference_95"]),
                    pct(a["accuracy_at_card_threshold"]),
                ]
            )
        if "dlib_face_recognition" in r:
            d = r["dlib_face_recognition"]["both_found"]
            rows.append(
                [name, "dlib's own pipeline", "", r["pairs_both_found"], f"{d['auc']:.4f}"]
                + [pct(d["accuracy_at_card_threshold"]), pct(d["tar_at_far_1e-3"]), "", ""]
            )
    table = common.markdown_table(
        [
            "set",
            "framing",
            "photos framed by dlib-5",
            "pairs both found",
            "AUC there",
            "accuracy % there (card threshold)",
            "TAR % at FAR 1e-3 there",
            "accuracy minus mtcnn's, 95 % interval (points)",
            "accuracy %, all pairs",
        ],
        rows,
    )
    run.finish(
        {
            "cfp_folds": args.cfp_folds,
            "box_map": BOX_MAP,
            "model": common.model_info(args.model),
        },
        results,
        {"Chip framing per photo: MTCNN, dlib-5 or a rule": table},
    )


if __name__ == "__main__":
    main()
