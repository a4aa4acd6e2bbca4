"""Hard-photo proxies (issue 16): facever and dlib on tight face crops and on relit faces made from LFW
fold 10 and CFP-FF, beside the same pairs' originals. ``--lfw-folds 1 2 3 4`` runs the LFW part on the
folds issue 16's choices were made on instead (four times fold 10's pairs; no test fold).

The held-back sets that showed the problem stay held back; these proxies imitate them from the two
sets we may evaluate on:
  * tight: the 112x112 crop of the standard ArcFace 5-point template, the face filling it (as
    face-recognition data sets distribute faces);
  * relit: a face-filling 168x192 greyscale crop, darkened by a strong gamma (2.2) and shaded by a
    ramp from full light on one side to 10 % on the other (the side drawn per photo), like photos
    under one-sided, extreme light.
The five points that frame a proxy come from facever's detector on the original photo, as it was when
the proxies were first made (PROXY_DETECTOR), so that the proxy set stays the same while the detector
under test changes; a photo in which it finds no face has no proxy, and its pairs are left out of
every row (counted). Each system
then runs on the proxy files as users run it (facever: its whole pipeline; dlib: HOG upsampled once,
5-point landmarks, chip, descriptor); a photo without a face fails its pairs. The "both found"
columns compare the two on the pairs where each found both faces.

The proxy images are written under .cache/proxies/ (ignored by git), never into the repository.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import common
import numpy as np
from accuracy import dlib_embeddings
from PIL import Image
from scipy.stats import binomtest

from facever.model.alignment import TEMPLATE_112, align
from facever.model.detection import DetectorConfig, FaceDetector
from facever.model.face_choice import choose_face
from facever.model.images import ImageError, read_image
from facever.model.matching import all_pairs, is_match, match_rate, pair_scores
from facever.model.runtime import FacePipeline
from facever.training.evaluation.cfp import CFP, person
from facever.training.evaluation.evaluate import embed_images
from facever.training.evaluation.lfw import LFW, Pair
from facever.training.evaluation.protocol import auc, failed_as_wrong, tar_at_far, ten_fold_accuracy

DEFAULT_CFP = common.REPO.parent / "shared" / "data" / "cfp"
DLIB_DISTANCE = 0.6
GAMMA = 2.2
RAMP_FLOOR = 0.1


def tight_crop(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    return align(rgb, landmarks, TEMPLATE_112, 112)


def relit_crop(rgb: np.ndarray, landmarks: np.ndarray, key: str) -> np.ndarray:
    """Face-filling 168x192 greyscale, gamma-darkened and shaded from one side (chosen by ``key``)."""
    points = TEMPLATE_112 * 1.5 + (12.0, 0.0)  # cut to the middle 168 columns: the face fills them
    square = align(rgb, landmarks, points, 192)[:, 12:180]
    grey = np.asarray(Image.fromarray(square).convert("L"), np.float64) / 255.0
    ramp = np.linspace(1.0, RAMP_FLOOR, grey.shape[1])
    if hashlib.sha256(key.encode()).digest()[0] % 2:
        ramp = ramp[::-1]
    lit = (grey * ramp[None, :]) ** GAMMA
    return np.repeat(np.round(lit * 255).astype(np.uint8)[..., None], 3, axis=2)


# The detector the proxies are framed by: the default of 2026-12-05 (MTCNN on the equalised copy first,
# every P-Net candidate above 0.6 to R-Net, black past the photo's edge).
PROXY_DETECTOR = DetectorConfig(pnet_first=0.6, crop_fill_mean=False)


def framed_by(pipeline: FacePipeline) -> str:
    """A short name for the detector settings that frame the proxies (their files' folder, and part of
    their keys in the embedding caches, so that proxies framed otherwise are never taken from a cache)."""
    return hashlib.sha256(repr(pipeline.detector.config).encode()).hexdigest()[:12]


def cache_prefix(variant: str, maker: FacePipeline) -> str:
    """What a photo's key starts with in the embedding caches: the variant, and for a proxy the detector
    that framed it (the originals are the same files whatever the detector)."""
    return variant if variant == "original" else f"{variant}-{framed_by(maker)}"


def make_proxies(pipeline: FacePipeline, paths: dict[str, Path], folder: Path) -> dict[str, dict[str, Path]]:
    """{"tight": {key: file}, "relit": {key: file}} for every key whose original has a face. The files go
    under ``folder`` in a subfolder named by the detector settings that framed them, so that proxies
    made by different detectors (this script's and bench/detector_choice.py's) are never mixed."""
    made: dict[str, dict[str, Path]] = {"tight": {}, "relit": {}}
    folder = folder / framed_by(pipeline)
    for key, path in sorted(paths.items()):
        files = {kind: folder / kind / f"{key}.png" for kind in made}
        if not all(file.exists() for file in files.values()):
            try:
                rgb = read_image(path)
                face = choose_face(pipeline.detect(rgb))
            except ImageError:
                continue
            for kind, image in (
                ("tight", tight_crop(rgb, face.landmarks)),
                ("relit", relit_crop(rgb, face.landmarks, key)),
            ):
                files[kind].parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(files[kind])
        for kind in made:
            made[kind][key] = files[kind]
    return made


def scores_of(embeddings: dict[str, np.ndarray], pairs: list[Pair], metric: str) -> np.ndarray:
    return pair_scores(embeddings, pairs, metric=metric)


def metrics(scores: np.ndarray, same: np.ndarray, folds: np.ndarray, threshold: float, fold_ids) -> dict:
    """Failed pairs count as wrong; AUC and TAR on the pairs scored."""
    scored = failed_as_wrong(scores, same)
    found = ~np.isnan(scores)
    accuracy = float(np.mean(is_match(scored, threshold) == same))
    tenfold = ten_fold_accuracy(scored, same, folds, fold_ids) if len(fold_ids) > 1 else None
    return {
        "accuracy_at_own_threshold": accuracy,
        "accuracy_10fold": None if tenfold is None else tenfold["mean"],
        "auc_scored": auc(scores[found], same[found]) if found.any() else None,
        "tar_at_far_1e-3_scored": tar_at_far(scores[found], same[found], 1e-3)[0] if found.any() else None,
    }


def discordant(ours_right: np.ndarray, theirs_right: np.ndarray) -> dict:
    """The pairs only one system gets right, and McNemar's exact two-sided p-value: how likely so
    uneven a split of them is if both systems were equally accurate (a binomial test at 1/2)."""
    ours_only = int(np.sum(ours_right & ~theirs_right))
    theirs_only = int(np.sum(theirs_right & ~ours_right))
    n = ours_only + theirs_only
    p = binomtest(ours_only, n, 0.5).pvalue if n else 1.0
    return {"facever_only_right": ours_only, "dlib_only_right": theirs_only, "mcnemar_p": float(p)}


def compare(
    name: str, pairs: list[Pair], facever: dict, dlib: dict, threshold: float, fold_ids: list[int]
) -> dict:
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    ours = scores_of(facever, pairs, "cosine")
    theirs = scores_of(dlib, pairs, "euclidean")  # minus the distance
    both = ~np.isnan(ours) & ~np.isnan(theirs)
    keys = sorted({k for p in pairs for k in (p.first, p.second)})
    result = {"set": name, "pairs": len(pairs), "photos": len(keys), "pairs_both_found": int(both.sum())}
    for system, scores, own in (("facever", ours, threshold), ("dlib", theirs, -DLIB_DISTANCE)):
        embeddings = facever if system == "facever" else dlib
        result[system] = {
            "no_face": sum(bool(np.isnan(embeddings[k]).any()) for k in keys),
            "all_pairs": metrics(scores, same, folds, own, fold_ids),
            "both_found": metrics(scores[both], same[both], folds[both], own, fold_ids),
        }
    result["both_found_discordant"] = discordant(
        is_match(ours[both], threshold) == same[both], is_match(theirs[both], -DLIB_DISTANCE) == same[both]
    )
    return result


def all_vs_all(embeddings: dict[str, np.ndarray], thresholds: dict[str, float], metric: str) -> dict:
    """Every pair of the photos with a face (a key starts with its person, in LFW and CFP alike): the
    share of different-person pairs accepted (FAR) and of same-person pairs accepted (TAR) at each
    threshold (cosine; for "euclidean", minus the distance)."""
    keys = sorted(k for k, v in embeddings.items() if not np.isnan(v).any())
    vectors = np.stack([embeddings[k] for k in keys]).astype(np.float64)
    scores, same = all_pairs(vectors, [person(k) for k in keys], metric)
    return {
        "photos": len(keys),
        "impostor_pairs": int((~same).sum()),
        "genuine_pairs": int(same.sum()),
        "far": {name: match_rate(scores[~same], t) for name, t in thresholds.items()},
        "tar": {name: match_rate(scores[same], t) for name, t in thresholds.items()},
    }


def relight_cost(files: list[Path]) -> dict:
    """Detection time on one core with and without the luminance-equalised copy, for the photos that
    need it (both passes on the photo find nothing) and the photos that do not."""
    with_retry = FaceDetector(DetectorConfig(), device="cpu", threads=1)
    without = FaceDetector(dataclasses.replace(DetectorConfig(), equalize=False), device="cpu", threads=1)
    times: dict[str, list[tuple[float, float]]] = {"needed": [], "not_needed": []}
    found_by_retry = 0
    for file in files:
        rgb = read_image(file)
        start = time.perf_counter()
        plain = without.detect(rgb)
        middle = time.perf_counter()
        retried = with_retry.detect(rgb)
        end = time.perf_counter()
        kind = "not_needed" if plain else "needed"
        times[kind].append((middle - start, end - middle))
        found_by_retry += bool(retried) and not plain
    summary: dict[str, object] = {"photos": len(files), "found_only_by_the_retry": found_by_retry}
    for kind, pairs in times.items():
        if pairs:
            before, after = np.median(np.array(pairs), axis=0) * 1000
            summary[kind] = {"photos": len(pairs), "ms_without": float(before), "ms_with": float(after)}
    return summary


def facever_vectors(pipeline: FacePipeline, paths: dict[str, Path], cache: Path, tag: str) -> dict:
    return embed_images(pipeline, paths, cache, tag)["embeddings"]


def cost_table(costs: dict) -> str:
    rows = []
    for name, cost in costs.items():
        for kind in ("needed", "not_needed"):
            if kind in cost:
                c = cost[kind]
                rows.append(
                    [name, kind.replace("_", " "), c["photos"], f"{c['ms_without']:.1f} / {c['ms_with']:.1f}"]
                )
        rows.append([name, "found only by the retry", cost["found_only_by_the_retry"], ""])
    return common.markdown_table(["set", "photos where the retry is", "photos", "ms without / with"], rows)


def far_row(name: str, every_pair: dict, facever_thresholds: list[str]) -> list[str]:
    ours, theirs = every_pair["facever"], every_pair["dlib"]
    return [
        name,
        f"{ours['photos']} / {theirs['photos']}",
        f"{ours['impostor_pairs']:,} / {theirs['impostor_pairs']:,}",
        " / ".join(f"{100 * ours['far'][threshold]:.3f}" for threshold in facever_thresholds),
        f"{100 * theirs['far']['distance 0.6']:.3f}",
        f"{100 * ours['tar']['verify']:.2f} / {100 * theirs['tar']['distance 0.6']:.2f}",
    ]


def lfw_name(folds: list[int]) -> str:
    """The set's name in the tables: LFW fold 10, LFW folds 1-4."""
    if len(folds) == 1:
        return f"LFW fold {folds[0]}"
    ordered = sorted(folds)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"LFW folds {ordered[0]}-{ordered[-1]}"
    return "LFW folds " + ", ".join(map(str, ordered))


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "proxies")
    parser.add_argument("--cfp", type=Path, default=DEFAULT_CFP)
    parser.add_argument("--cache", type=Path, default=common.REPO / ".cache")
    parser.add_argument(
        "--cfp-folds", type=int, nargs="+", default=list(range(1, 11)), help="CFP-FF folds to use (all)"
    )
    parser.add_argument(
        "--lfw-folds",
        type=int,
        nargs="+",
        default=[10],
        help="LFW folds to use (10, the test fold; 1 2 3 4 are the folds issue 16's choices were made on)",
    )
    args = parser.parse_args()
    run = common.Run("proxies", args)
    pipeline = FacePipeline(args.model, "cpu", 0, detection_device="cpu")
    maker = FacePipeline(args.model, "cpu", 0, PROXY_DETECTOR, detection_device="cpu")
    lfw, cfp = LFW(args.data), CFP(args.cfp)
    sets = {
        lfw_name(args.lfw_folds): (
            [p for p in lfw.pairs() if p.fold in args.lfw_folds],
            lfw.path,
            args.lfw_folds,
        ),
        "CFP-FF": ([p for p in cfp.pairs("FF") if p.fold in args.cfp_folds], cfp.path, args.cfp_folds),
    }
    card_thresholds = {
        "verify": pipeline.card.threshold,
        "far_1e-3": pipeline.card.thresholds.far_1e_3,
        "identify": pipeline.card.identify_threshold,
    }
    results = []
    costs = {}
    for name, (pairs, path_of, fold_ids) in sets.items():
        if args.smoke:
            pairs = pairs[:: max(1, len(pairs) // 8)]
        originals = {k: path_of(k) for p in pairs for k in (p.first, p.second)}
        tag = name.lower().replace(",", "").replace(" ", "-")
        proxies = make_proxies(maker, originals, args.cache / "proxies" / tag)
        kept = [p for p in pairs if p.first in proxies["tight"] and p.second in proxies["tight"]]
        print(f"proxies: {name}: {len(kept)} of {len(pairs)} pairs have both originals' faces", flush=True)
        relit_files = sorted({proxies["relit"][k] for p in kept for k in (p.first, p.second)})
        costs[name] = relight_cost(relit_files[: 10 if args.smoke else 600])
        print(f"proxies: relight retry cost on {name} relit: {costs[name]}", flush=True)
        for variant, paths in (("original", originals), *proxies.items()):
            prefix = cache_prefix(variant, maker)
            variant_paths = {f"{prefix}/{k}": paths[k] for p in kept for k in (p.first, p.second)}
            ours = facever_vectors(pipeline, variant_paths, args.cache, f"proxy-{tag}-{variant}")
            theirs = dlib_embeddings(variant_paths, args.cache)
            strip = len(prefix) + 1
            facever = {k[strip:]: v for k, v in ours.items()}
            dlib = {k[strip:]: v for k, v in theirs.items()}
            row = compare(f"{name} {variant}", kept, facever, dlib, pipeline.card.threshold, fold_ids)
            row["pairs_left_out"] = len(pairs) - len(kept)
            row["all_vs_all"] = {
                "facever": all_vs_all(facever, card_thresholds, "cosine"),
                "dlib": all_vs_all(dlib, {"distance 0.6": -DLIB_DISTANCE}, "euclidean"),
            }
            results.append(row)
            print(f"proxies: {row}", flush=True)
    pct = lambda value: "-" if value is None else f"{100 * value:.2f}"  # noqa: E731
    rows = [
        [
            r["set"],
            f"{r['facever']['no_face']} / {r['dlib']['no_face']} of {r['photos']}",
            f"{pct(r['facever']['all_pairs']['accuracy_at_own_threshold'])} / "
            f"{pct(r['dlib']['all_pairs']['accuracy_at_own_threshold'])}",
            r["pairs_both_found"],
            f"{pct(r['facever']['both_found']['accuracy_at_own_threshold'])} / "
            f"{pct(r['dlib']['both_found']['accuracy_at_own_threshold'])}",
            f"{r['facever']['both_found']['auc_scored']:.4f} / {r['dlib']['both_found']['auc_scored']:.4f}",
            f"{pct(r['facever']['both_found']['tar_at_far_1e-3_scored'])} / "
            f"{pct(r['dlib']['both_found']['tar_at_far_1e-3_scored'])}",
            "{facever_only_right} / {dlib_only_right} (p {mcnemar_p:.2f})".format(
                **r["both_found_discordant"]
            ),
        ]
        for r in results
    ]
    table = common.markdown_table(
        [
            "set",
            "photos without a face (facever / dlib)",
            "accuracy %, all pairs, own threshold",
            "pairs both found",
            "accuracy % there",
            "AUC there",
            "TAR % at FAR 1e-3 there",
            "pairs only facever / only dlib gets right there (McNemar p)",
        ],
        rows,
    )
    far_rows = [far_row(r["set"], r["all_vs_all"], list(card_thresholds)) for r in results]
    far_table = common.markdown_table(
        [
            "set",
            "photos with a face (facever / dlib)",
            "different-person pairs (facever / dlib)",
            "facever: % accepted at verify / far_1e-3 / identify threshold",
            "dlib: % accepted at distance 0.6",
            "same-person pairs accepted %, verify / 0.6",
        ],
        far_rows,
    )
    run.finish(
        {
            "cfp_folds": args.cfp_folds,
            "card_thresholds": card_thresholds,
            "lfw_folds": args.lfw_folds,
            "gamma": GAMMA,
            "ramp_floor": RAMP_FLOOR,
            "model": common.model_info(args.model),
        },
        {"rows": results, "relight_retry_cost": costs},
        {
            "Tight and relit proxies, facever / dlib on the same pairs": table,
            "Every pair of the photos (all-vs-all): different people accepted at each system's thresholds": (
                far_table
            ),
            "Detection ms on one core without / with the retry on the equalised copy (relit photos)": (
                cost_table(costs)
            ),
        },
    )


if __name__ == "__main__":
    main()
