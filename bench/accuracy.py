"""Verification accuracy of every shipped facever model and of dlib's face ResNet, on identical pairs:
LFW View 2 and CFP (frontal-frontal and frontal-profile).

facever runs through the service's own runtime (``facever eval``: MTCNN with its second pass, the
largest face, alignment, ONNX embedding); dlib runs the way the ``face_recognition`` library does (HOG
detector upsampled once, 5-point landmarks, 150x150 chip, 128-D descriptor, Euclidean distance,
same person at distance <= 0.6). For both, a photo in which no face is found fails every pair it is in
(a wrong answer whatever the threshold), as a user of either would see it; AUC and TAR are computed on
the pairs both of whose photos were scored.

Protocols (../shared/data/README.md): 10-fold accuracy takes each fold's threshold from the other
folds; "at own threshold" uses the threshold each system ships with (facever's model card, dlib's 0.6).
A facever model is reported on LFW only on the folds whose people it never saw, threshold calibration
included (its card's test folds: fold 10 for a fine-tuned model, folds 1-8 and 10 for the imported
weights); dlib, trained on no LFW fold by us, on fold 10 and on all ten. CFP is never used to train,
select or calibrate. CFP-FF also scores every pair of frontal photos (all-vs-all, 12.5 M impostor
pairs): TAR at FAR 1e-3 and 1e-4, and the false accept rate that each card threshold really gives.

Embeddings are cached per model and data set (``.cache/``), so a rerun only recomputes the metrics.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import common
import numpy as np

from facever.model.card import ModelCard
from facever.model.matching import pair_scores
from facever.training.evaluation.cfp import CFP
from facever.training.evaluation.evaluate import (
    all_vs_all,
    evaluate_cfp,
    evaluate_lfw,
    first_pairs,
    verification_report,
)
from facever.training.evaluation.lfw import LFW, Pair
from facever.training.teacher import RECIPE, load_or_build

DLIB_DISTANCE = 0.6  # face_recognition's default tolerance: same person when distance <= 0.6
ALL_FOLDS = list(range(1, 11))
SMOKE_PER_FOLD = 1


def shipped_models() -> list[Path]:
    return sorted(p.parent for p in (common.REPO / "model").glob("*/model_card.json"))


def wilson_interval(accuracy: float, n: int, z: float = 1.96) -> list[float]:
    """95 % interval of an accuracy measured on n pairs (Wilson score interval)."""
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


# -- facever -------------------------------------------------------------------------------------


def facever_reports(
    model_dir: Path, lfw_root: Path, cfp_root: Path, cache: Path, per_fold: int | None
) -> dict:
    card = ModelCard.load(model_dir)
    test_folds = sorted(card.data.test_folds)
    if 10 not in test_folds:
        raise SystemExit(f"{model_dir}: fold 10 is not among the card's test folds {test_folds}")
    reports = {"lfw_fold10": evaluate_lfw(model_dir, lfw_root, [10], cache_dir=cache, per_fold=per_fold)}
    if len(test_folds) > 1:
        reports["lfw_test_folds"] = evaluate_lfw(
            model_dir, lfw_root, test_folds, cache_dir=cache, per_fold=per_fold
        )
    for protocol in ("FF", "FP"):
        reports[f"cfp_{protocol.lower()}"] = evaluate_cfp(
            model_dir, cfp_root, protocol, cache, per_fold=per_fold
        )
    reports["embed_ms_one_core"] = facever_embed_ms(model_dir, lfw_root)
    return reports


def facever_embed_ms(model_dir: Path, lfw_root: Path, faces: int = 20, runs: int = 5) -> float:
    """Median milliseconds to embed one aligned face, batch 1, one onnxruntime thread."""
    from facever.model.images import read_image
    from facever.model.runtime import FacePipeline

    pipeline = FacePipeline(model_dir, device="cpu", threads=1)
    lfw = LFW(lfw_root)
    crops = []
    for pair in lfw.pairs()[:faces]:
        image = read_image(lfw.path(pair.first))
        if found := pipeline.detect(image):
            crops.append(pipeline.crop(image, found[0])[None])
    pipeline.embed(crops[0])
    times = []
    for _ in range(runs):
        for crop in crops:
            start = time.perf_counter()
            pipeline.embed(crop)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


# -- dlib ----------------------------------------------------------------------------------------


def dlib_embeddings(paths: dict[str, Path], cache: Path) -> dict[str, np.ndarray]:
    """dlib's descriptor of every key; NaN where its detector finds no face (face_recognition returns
    no encoding there, so there is nothing to compare)."""
    built = load_or_build(paths, cache)
    rows = zip(built["keys"], built["embeddings"], built["found"], strict=True)
    return {key: (vector if found else np.full_like(vector, np.nan)) for key, vector, found in rows}


def dlib_report(pairs: list[Pair], embeddings: dict, folds: list[int], name: str) -> dict:
    scores = pair_scores(embeddings, pairs, metric="euclidean")  # minus the distance; NaN stays NaN
    same, pair_folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    report = verification_report(scores, same, pair_folds, folds, -DLIB_DISTANCE)
    keys = {k for p in pairs if p.fold in folds for k in (p.first, p.second)}
    report["no_face_count"] = sum(bool(np.isnan(embeddings[k]).any()) for k in keys)
    report["n_images"] = len(keys)
    report["dataset"] = name
    return report


def dlib_reports(lfw_root: Path, cfp_root: Path, cache: Path, per_fold: int | None) -> dict:
    lfw, cfp = LFW(lfw_root), CFP(cfp_root)
    lfw_pairs = first_pairs(lfw.pairs(), per_fold)
    lfw_embeddings = dlib_embeddings({k: lfw.path(k) for p in lfw_pairs for k in (p.first, p.second)}, cache)
    cfp_pairs = {proto: first_pairs(cfp.pairs(proto), per_fold) for proto in ("FF", "FP")}
    cfp_paths = {k: cfp.path(k) for pairs in cfp_pairs.values() for p in pairs for k in (p.first, p.second)}
    if per_fold is None:
        cfp_paths |= {k: cfp.path(k) for keys in cfp.frontal_people().values() for k in keys}
    cfp_embeddings = dlib_embeddings(cfp_paths, cache)
    reports = {
        "lfw_fold10": dlib_report(lfw_pairs, lfw_embeddings, [10], "LFW View 2"),
        "lfw_all_folds": dlib_report(lfw_pairs, lfw_embeddings, ALL_FOLDS, "LFW View 2"),
        "cfp_ff": dlib_report(cfp_pairs["FF"], cfp_embeddings, ALL_FOLDS, "CFP-FF"),
        "cfp_fp": dlib_report(cfp_pairs["FP"], cfp_embeddings, ALL_FOLDS, "CFP-FP"),
    }
    frontal = sorted(k for k in cfp_embeddings if "/frontal/" in k and not np.isnan(cfp_embeddings[k]).any())
    reports["cfp_ff"]["all_vs_all"] = all_vs_all(
        np.stack([cfp_embeddings[k] for k in frontal]),
        [k.split("/")[0] for k in frontal],
        {"distance 0.6": -DLIB_DISTANCE},
        metric="euclidean",
    )
    reports["embed_ms_one_core"] = dlib_embed_ms(lfw, lfw_pairs)
    reports["lfw_pairs"], reports["lfw_embeddings"] = lfw_pairs, lfw_embeddings  # for other fold sets
    return reports


def dlib_embed_ms(lfw: LFW, pairs: list[Pair], faces: int = 10) -> float:
    """Median milliseconds of dlib's compute_face_descriptor on one 150x150 chip (dlib uses one core)."""
    import dlib

    from facever.model.images import read_image
    from facever.training.teacher import DlibPeer

    peer = DlibPeer()
    chips = []
    for pair in pairs[:faces]:
        rgb = read_image(lfw.path(pair.first))
        if rects := peer.detect(rgb):
            chips.append(dlib.get_face_chip(rgb, peer.shapes(rgb, rects[0]), 150, 0.25))
    times = []
    for chip in chips * 2:
        start = time.perf_counter()
        peer.encoder.compute_face_descriptor(chip, RECIPE["jitters"])
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


# -- tables --------------------------------------------------------------------------------------


def _percent(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def accuracy_cell(report: dict) -> str:
    if report["accuracy_mean"] is None:
        return "— (needs the other folds)"
    if len(report["folds"]) == 1:
        return _percent(report["accuracy_mean"])
    return f"{_percent(report['accuracy_mean'])} ± {_percent(report['accuracy_std'])}"


def table(rows: list[tuple[str, str, dict, float]]) -> str:
    headers = [
        "data set (folds)",
        "system",
        "accuracy, 10-fold protocol",
        "accuracy at own threshold",
        "AUC",
        "TAR @ FAR 1e-3",
        "photos with no face",
        "failed pairs",
        "embedding, ms/face (1 core)",
    ]
    body = []
    for data_label, system, r, ms in rows:
        body.append(
            [
                f"{data_label} ({', '.join(map(str, r['folds'])) if len(r['folds']) < 10 else '1–10'}; "
                f"{r['n_pairs']:,} pairs)",
                system,
                accuracy_cell(r),
                _percent(r["accuracy_at_model_threshold"]),
                f"{r['auc']:.4f}",
                _percent(r["tar_at_far"]["1e-3"], 1),
                f"{r['no_face_count']} / {r['n_images']:,}",
                f"{r['failed_pairs']}",
                f"{ms:.1f}",
            ]
        )
    return common.markdown_table(headers, body)


def operating_points_table(systems: list[tuple[str, dict]]) -> str:
    headers = ["system", "threshold", "value", "FAR on CFP-FF all-vs-all", "TAR on CFP-FF all-vs-all"]
    body = []
    for system, report in systems:
        every = report.get("all_vs_all")
        if not every:
            continue
        for name, point in every["at_card_thresholds"].items():
            body.append(
                [system, name, f"{point['threshold']:.4f}", f"{point['far']:.2e}", _percent(point["tar"], 1)]
            )
        body.append(
            [
                system,
                "TAR @ FAR 1e-3 / 1e-4",
                "(per curve)",
                f"{every['impostor_pairs']:,} impostor pairs",
                f"{_percent(every['tar_at_far']['1e-3'], 1)} / {_percent(every['tar_at_far']['1e-4'], 1)}",
            ]
        )
    return common.markdown_table(headers, body)


def score_spread_table(systems: list[tuple[str, str, dict]]) -> str:
    """Where each system's scores lie on CFP-FF all-vs-all (system, its score, report): what a score
    means for it. dlib's score is minus the Euclidean distance."""
    headers = ["system", "score", "same person: mean / lowest", "different people: mean / lowest / highest"]
    body = []
    for system, score, report in systems:
        spread = (report.get("all_vs_all") or {}).get("scores")
        if spread:
            genuine, impostor = spread["genuine"], spread["impostor"]
            body.append(
                [
                    system,
                    score,
                    f"{genuine['mean']:.3f} / {genuine['min']:.3f}",
                    f"{impostor['mean']:.3f} / {impostor['min']:.3f} / {impostor['max']:.3f}",
                ]
            )
    return common.markdown_table(headers, body)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "accuracy")
    parser.add_argument("--cfp", type=Path, default=common.REPO.parent / "shared" / "data" / "cfp")
    parser.add_argument("--cache", type=Path, help="embedding cache (default .cache; smoke: <out>/cache)")
    parser.add_argument(
        "--candidate", type=Path, action="append", default=[], help="also an unshipped model folder"
    )
    args = parser.parse_args()
    run = common.Run("accuracy", args)
    cache = args.cache or (Path(args.out) / "cache" if args.smoke else common.REPO / ".cache")
    per_fold = SMOKE_PER_FOLD if args.smoke else None

    model_dirs = shipped_models() if args.model == common.DEFAULT_MODEL else [args.model]
    model_dirs += [Path(c) for c in args.candidate]
    results: dict = {"facever": {}, "dlib": dlib_reports(args.data, args.cfp, cache, per_fold)}
    labels = {}
    for model_dir in model_dirs:
        info = common.model_info(model_dir)
        where = model_dir.resolve()
        where = where.relative_to(common.REPO) if where.is_relative_to(common.REPO) else model_dir
        label = f"{info['name']} {info['version']} ({where})"
        labels[label] = str(model_dir)
        results["facever"][label] = facever_reports(model_dir, args.data, args.cfp, cache, per_fold)

    dlib = results["dlib"]
    lfw_pairs, lfw_embeddings = dlib.pop("lfw_pairs"), dlib.pop("lfw_embeddings")
    dlib_label = f"dlib ResNet, face_recognition (distance ≤ {DLIB_DISTANCE})"
    rows = []
    for key, data_label in (
        ("lfw_fold10", "LFW"),
        ("lfw_test_folds", "LFW"),
        ("cfp_ff", "CFP-FF"),
        ("cfp_fp", "CFP-FP"),
    ):
        peer_reports = {}
        for label, reports in results["facever"].items():
            if key not in reports:
                continue
            rows.append((data_label, label, reports[key], reports["embed_ms_one_core"]))
            folds = reports[key]["folds"]
            if key == "lfw_test_folds":  # dlib on the very same pairs
                peer_key = f"lfw_folds_{'_'.join(map(str, folds))}"
                dlib[peer_key] = dlib_report(lfw_pairs, lfw_embeddings, folds, "LFW View 2")
            else:
                peer_key = key
            peer_reports[peer_key] = dlib[peer_key]
        for report in peer_reports.values():
            rows.append((data_label, dlib_label, report, dlib["embed_ms_one_core"]))
        if key == "lfw_test_folds":
            rows.append((data_label, dlib_label, dlib["lfw_all_folds"], dlib["embed_ms_one_core"]))
    for reports in (*results["facever"].values(), dlib):
        for key in ("lfw_fold10",):
            report = reports[key]
            report["accuracy_at_model_threshold_ci95"] = wilson_interval(
                report["accuracy_at_model_threshold"], report["n_pairs"]
            )
    operating = [(label, reports["cfp_ff"]) for label, reports in results["facever"].items()]
    operating.append((dlib_label, dlib["cfp_ff"]))
    config = {
        "models": labels,
        "lfw": str(args.data),
        "cfp": str(args.cfp),
        "dlib_recipe": {**RECIPE, "fallback": "none: a photo with no face fails its pairs"},
        "cache_dir": str(cache),
        "per_fold": per_fold,
    }
    tables = {
        "Verification accuracy, facever and dlib on the same pairs": table(rows),
        "Operating points: the false accept rate each threshold really gives on CFP-FF (all-vs-all)": (
            operating_points_table(operating)
        ),
        "Where the scores lie on CFP-FF (all-vs-all)": score_spread_table(
            [(label, "cosine similarity", reports["cfp_ff"]) for label, reports in results["facever"].items()]
            + [(dlib_label, "minus the distance", dlib["cfp_ff"])]
        ),
    }
    run.finish(config, results, tables)


if __name__ == "__main__":
    main()
