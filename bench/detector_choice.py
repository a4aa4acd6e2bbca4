"""Compare detector settings the way issue 16's choices are made: on LFW folds 1-4 only, never on a
test fold or CFP, as photographed, as tight 112x112 ArcFace crops and as relit face-filling crops
(bench/proxies.py makes both, from the faces of PROXY_MAKER, whatever is compared). The
chip is cut from the photo in every setting; only where the detector places the box and the landmarks
differs. Each setting's threshold is the best-accuracy one on fold 9's pairs. Reported: accuracy at
that threshold, AUC and TAR at FAR 1e-3 over the pairs in which every setting found both faces, the
share of different-person pairs accepted at that threshold among every pair of the photos with a face
(all-vs-all), and the photos without a face. bench/equalise.py and bench/mirror_landmarks.py use it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common
import numpy as np
from proxies import all_vs_all, make_proxies

from facever.model.detection import DetectorConfig
from facever.model.images import read_image
from facever.model.runtime import FacePipeline
from facever.training.evaluation.lfw import LFW, Pair
from facever.training.evaluation.protocol import auc, best_threshold, tar_at_far

SELECTION_FOLDS = (1, 2, 3, 4)
# The detector the tight and relit proxies are framed by, fixed so that they stay the same files while
# the detector under test changes: MTCNN on the photo as it is, every P-Net candidate above 0.6 to
# R-Net, black past the photo's edge (the detector as published).
PROXY_MAKER = DetectorConfig(equalize=False, pnet_first=0.6, crop_fill_mean=False)
VERSION = 2  # of the embeddings cached under .cache/<benchmark>/ (2: proxies by PROXY_MAKER)


def embeddings(pipeline: FacePipeline, paths: dict[str, Path], file: Path, tag: str) -> dict:
    """Key -> the chosen face's embedding (None without a face), cached in ``file``."""
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


def compare(
    benchmark: str,
    title: str,
    settings: dict[str, DetectorConfig | tuple[Path, DetectorConfig]],
    args: argparse.Namespace,
) -> None:
    """Run the comparison of ``settings`` (name -> detector config, or a model folder and a detector
    config; the model is --model where none is named) and write ``benchmark``'s results."""
    run = common.Run(benchmark, args)
    cache = args.cache / benchmark
    models = {
        name: setting if isinstance(setting, tuple) else (args.model, setting)
        for name, setting in settings.items()
    }
    pipelines = {
        name: FacePipeline(model, "cpu", 0, config, detection_device="cpu")
        for name, (model, config) in models.items()
    }
    lfw = LFW(args.data)
    calibration = [p for p in lfw.pairs() if p.fold == 9]
    selection = [p for p in lfw.pairs() if p.fold in SELECTION_FOLDS]
    if args.smoke:
        calibration, selection = calibration[::40], selection[::80]
    same9 = np.array([p.same for p in calibration])
    thresholds = {}
    keys9 = {k: lfw.path(k) for p in calibration for k in (p.first, p.second)}
    for name, pipeline in pipelines.items():
        s = scores(
            embeddings(pipeline, keys9, cache / f"{name}-lfw-fold-9-v{VERSION}.npz", name), calibration
        )
        found = ~np.isnan(s)
        thresholds[name] = best_threshold(s[found], same9[found])[0]
    originals = {k: lfw.path(k) for p in selection for k in (p.first, p.second)}
    maker = FacePipeline(args.model, "cpu", 0, PROXY_MAKER, detection_device="cpu")
    proxies = make_proxies(maker, originals, args.cache / "proxies" / "lfw-folds-1-4")
    kept = [p for p in selection if p.first in proxies["tight"] and p.second in proxies["tight"]]
    same = np.array([p.same for p in kept])
    results: dict[str, dict] = {}
    rows = []
    for variant, paths in (("original", originals), *proxies.items()):
        keys = {k: paths[k] for p in kept for k in (p.first, p.second)}
        vectors = {
            name: embeddings(pipeline, keys, cache / f"{name}-lfw-folds-1-4-{variant}-v{VERSION}.npz", name)
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
                "far_all_vs_all": all_vs_all(
                    {k: np.full(2, np.nan) if v is None else v for k, v in vectors[name].items()},
                    {"fold-9": thresholds[name]},
                    "cosine",
                )["far"]["fold-9"],
            }
            results[variant][name] = m
            rows.append(
                [f"LFW folds 1-4, {variant}", name, int(both.sum()), f"{100 * m['accuracy']:.2f}"]
                + [f"{m['auc']:.5f}", f"{100 * m['tar_at_far_1e-3']:.2f}", f"{100 * m['far_all_vs_all']:.2f}"]
                + [f"{m['no_face']} of {m['photos']}"]
                + [f"{m['threshold_fold9']:.4f}"]
            )
    table = common.markdown_table(
        [
            "set",
            "setting",
            "pairs",
            "accuracy % (fold-9 threshold)",
            "AUC",
            "TAR % at FAR 1e-3",
            "different people accepted %, every pair of the photos",
            "photos without a face",
            "threshold",
        ],
        rows,
    )
    config = {
        "selection_folds": SELECTION_FOLDS,
        "models": {name: common.model_info(model) for name, (model, _) in models.items()},
    }
    run.finish(config, results, {title: table})


def parser(description: str, benchmark: str) -> argparse.ArgumentParser:
    parser = common.parser(description, benchmark)
    parser.add_argument("--cache", type=Path, default=common.REPO / ".cache")
    return parser
