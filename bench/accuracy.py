"""LFW View 2 accuracy of facever and of dlib's face recognition ResNet, on identical pairs.

facever runs through the service's runtime (MTCNN detection, alignment, ONNX embedding; centre crop
when no face is found); dlib runs the way the ``face_recognition`` library does (HOG detector,
5-point landmarks, 128-D descriptor; whole image when no face is found). Both no-face counts are
reported.

Protocol (../shared/data/lfw/README.md): accuracy on fold k uses the threshold that is best on the
other nine folds' pairs, scored by the same model. A model is reported only on folds whose people it
never saw, calibration included: facever on its card's test folds (fold 10 for the shipped model);
dlib, trained on no LFW person, on the same folds and on all ten (mean ± std over the folds).

Embeddings are cached per model and input (``.cache/``), so a rerun only recomputes the metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import common
import numpy as np

from facever.model.runtime import FacePipeline
from facever.training.evaluate import embed_images, pair_arrays, verification_report
from facever.training.lfw import LFW, Pair
from facever.training.teacher import RECIPE, load_or_build

DLIB_DISTANCE = 0.6  # face_recognition's default tolerance: same person when distance <= 0.6
ALL_FOLDS = list(range(1, 11))


def smoke_pairs(pairs: list[Pair], per_fold: int) -> list[Pair]:
    """The first ``per_fold`` matched and mismatched pairs of every fold."""
    chosen = []
    for fold in ALL_FOLDS:
        for same in (True, False):
            chosen += [p for p in pairs if p.fold == fold and p.same == same][:per_fold]
    return chosen


def no_face_count(pairs: list[Pair], folds: list[int], found: dict[str, bool]) -> dict:
    keys = {k for p in pairs if p.fold in folds for k in (p.first, p.second)}
    return {"no_face": sum(not found[k] for k in keys), "images": len(keys)}


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> list[float]:
    """95 % interval of an accuracy measured on n pairs (Wilson score interval)."""
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


def evaluate_facever(model_dir: Path, lfw: LFW, pairs: list[Pair], cache_dir: Path) -> tuple[dict, list]:
    pipeline = FacePipeline(model_dir)
    card = pipeline.card
    test_folds = card.data.get("test_folds")
    if not test_folds:
        raise SystemExit(f"{model_dir}: the model card names no test folds (data.test_folds)")
    seen = set(card.data.get("train_folds", [])) | set(card.data.get("calibration_folds", []))
    if seen & set(test_folds):
        raise SystemExit(f"{model_dir}: test folds {test_folds} overlap the folds it saw, {sorted(seen)}")
    keys = sorted({k for p in pairs for k in (p.first, p.second)})
    embedded = embed_images(pipeline, {k: lfw.path(k) for k in keys}, cache_dir)
    scores, same, folds = pair_arrays(pairs, embedded["embeddings"])
    report = verification_report(scores, same, folds, test_folds, card.threshold)
    report["threshold_rule"] = f"cosine similarity >= {card.threshold:.4f} (model card)"
    report.update(no_face_count(pairs, test_folds, embedded["found"]))
    report["providers"] = pipeline.providers
    return report, test_folds


def dlib_embeddings(lfw: LFW, keys: list[str], every_image: bool, cache_dir: Path) -> dict:
    """dlib descriptors of ``keys``. ``every_image`` asks for the cache of all LFW images at once
    (the one the trainer's teacher uses too), so a full run reuses it instead of building another."""
    wanted = {k for ks in lfw.identities().values() for k in ks} if every_image else set(keys)
    built = load_or_build({k: lfw.path(k) for k in wanted}, cache_dir)
    row = {k: i for i, k in enumerate(built["keys"])}
    return {
        "embeddings": {k: built["embeddings"][row[k]] for k in keys},
        "found": {k: bool(built["found"][row[k]]) for k in keys},
    }


def evaluate_dlib(lfw: LFW, pairs: list[Pair], test_folds: list[int], every_image: bool, cache_dir: Path):
    keys = sorted({k for p in pairs for k in (p.first, p.second)})
    embedded = dlib_embeddings(lfw, keys, every_image, cache_dir)
    first = np.stack([embedded["embeddings"][p.first] for p in pairs])
    second = np.stack([embedded["embeddings"][p.second] for p in pairs])
    scores = -np.linalg.norm(first - second, axis=1)  # higher = more alike, like facever's scores
    same, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    reports = {}
    for label, evaluate in (("test_folds", test_folds), ("all_folds", ALL_FOLDS)):
        report = verification_report(scores, same, folds, evaluate, -DLIB_DISTANCE)
        report["threshold_rule"] = f"Euclidean distance <= {DLIB_DISTANCE} (face_recognition's default)"
        report.update(no_face_count(pairs, evaluate, embedded["found"]))
        reports[label] = report
    return reports


def table(rows: list[tuple[str, dict]]) -> str:
    headers = [
        "model",
        "LFW folds (pairs)",
        "accuracy, 10-fold protocol",
        "accuracy at own threshold",
        "AUC",
        "EER",
        "TAR @ FAR 1e-3",
        "TAR @ FAR 1e-2",
        "no face found (images)",
    ]
    body = []
    for label, r in rows:
        folds = r["folds"]
        fold_text = f"{folds[0]}–{folds[-1]}" if len(folds) > 1 else str(folds[0])
        if len(folds) > 1:
            accuracy = f"{r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f}"
        else:
            low, high = r["accuracy_ci95"]
            accuracy = f"{r['accuracy_mean']:.4f} (95 % CI {low:.3f}–{high:.3f})"
        body.append(
            [
                label,
                f"{fold_text} ({r['n_pairs']:,})",
                accuracy,
                f"{r['accuracy_at_model_threshold']:.4f}",
                f"{r['auc']:.4f}",
                f"{r['eer']:.4f}",
                f"{r['tar_at_far']['1e-3']:.4f}",
                f"{r['tar_at_far']['1e-2']:.4f}",
                f"{r['no_face']} / {r['images']:,}",
            ]
        )
    return common.markdown_table(headers, body)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "accuracy")
    parser.add_argument("--cache", type=Path, help="embedding cache (default .cache; smoke: <out>/cache)")
    args = parser.parse_args()
    run = common.Run("accuracy", args)
    cache_dir = args.cache or (Path(args.out) / "cache" if args.smoke else common.REPO / ".cache")

    lfw = LFW(args.data)
    pairs = lfw.pairs()
    if args.smoke:
        pairs = smoke_pairs(pairs, per_fold=1)
    facever, test_folds = evaluate_facever(args.model, lfw, pairs, cache_dir)
    dlib = evaluate_dlib(lfw, pairs, test_folds, every_image=not args.smoke, cache_dir=cache_dir)
    for report in (facever, dlib["test_folds"]):
        if len(report["folds"]) == 1:
            report["accuracy_ci95"] = wilson_interval(report["accuracy_mean"], report["n_pairs"])

    model = common.model_info(args.model)
    rows = [
        (f"facever {model['version']} (cosine ≥ {model['threshold']:.3f})", facever),
        (f"dlib ResNet, face_recognition (distance ≤ {DLIB_DISTANCE})", dlib["test_folds"]),
        ("dlib ResNet, all ten folds", dlib["all_folds"]),
    ]
    config = {
        "model": model,
        "data": str(args.data),
        "pairs": len(pairs),
        "test_folds": test_folds,
        "dlib_recipe": RECIPE,
        "cache_dir": str(cache_dir),
    }
    results = {"facever": facever, "dlib": dlib["test_folds"], "dlib_all_folds": dlib["all_folds"]}
    run.finish(config, results, {"LFW View 2 verification": table(rows)})


if __name__ == "__main__":
    main()
