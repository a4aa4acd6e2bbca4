"""``facever eval lfw``: the LFW View 2 protocol on an exported model, through the service's runtime.

Images go through the same detection, alignment and ONNX embedding as in the service (largest
face; the documented centre-crop fallback when none is found, counted as ``no_face_count``).
Folds whose people the model saw in training or calibration (per its model card) are refused
unless asked for explicitly, and then marked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facever.model.card import ONNX_FILE
from facever.model.images import read_image
from facever.model.runtime import FacePipeline
from facever.training import protocol
from facever.training.lfw import LFW, Pair

FARS = {"1e-3": 1e-3, "1e-2": 1e-2}


def embed_images(pipeline: FacePipeline, paths: dict[str, Path], cache_dir: Path | None = None) -> dict:
    """{"embeddings": {key: vector}, "found": {key: bool}} for every image, cached per model file."""
    cache_file = None
    if cache_dir is not None:
        # what decides an embedding: the network, its card (e.g. flip averaging) and the detector
        recipe = hashlib.sha256((pipeline.embedder.model_dir / ONNX_FILE).read_bytes())
        decisive = pipeline.card.model_dump_json(include={"input", "alignment", "flip_test_time"})
        recipe.update(decisive.encode())
        recipe.update(repr(pipeline.detector.config).encode())
        cache_file = Path(cache_dir) / f"embeddings-{recipe.hexdigest()[:16]}.npz"
        if cache_file.exists():
            data = np.load(cache_file)
            rows = zip(data["embeddings"], data["found"], strict=True)
            cached = dict(zip(data["keys"].tolist(), rows, strict=True))
            if all(k in cached for k in paths):
                return {
                    "embeddings": {k: cached[k][0] for k in paths},
                    "found": {k: bool(cached[k][1]) for k in paths},
                }
    embeddings, found = {}, {}
    for key in tqdm(sorted(paths), desc="embed", unit="img"):
        embedding, face = pipeline.embed_largest(read_image(paths[key]))
        embeddings[key], found[key] = embedding, face is not None
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(embeddings)
        np.savez(
            cache_file,
            keys=np.array(keys),
            embeddings=np.stack([embeddings[k] for k in keys]),
            found=np.array([found[k] for k in keys]),
        )
    return {"embeddings": embeddings, "found": found}


def pair_arrays(
    pairs: list[Pair], embeddings: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine similarities, same-person flags and folds of ``pairs``."""
    first = np.stack([embeddings[p.first] for p in pairs])
    second = np.stack([embeddings[p.second] for p in pairs])
    scores = (first * second).sum(1)
    return scores, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])


def verification_report(
    scores: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray,
    evaluate: list[int],
    model_threshold: float | None,
) -> dict:
    """Every figure of the LFW report for the folds in ``evaluate`` (thresholds per the protocol)."""
    tested = np.isin(folds, evaluate)
    ten_fold = protocol.ten_fold_accuracy(scores, same, folds, evaluate)
    report = {
        "accuracy_mean": ten_fold["mean"],
        "accuracy_std": ten_fold["std"],
        "per_fold": {str(k): v for k, v in ten_fold["per_fold"].items()},
        "auc": protocol.auc(scores[tested], same[tested]),
        "eer": protocol.eer(scores[tested], same[tested]),
        "tar_at_far": {
            name: protocol.tar_at_far(scores[tested], same[tested], far)[0] for name, far in FARS.items()
        },
        "n_pairs": int(tested.sum()),
        "folds": sorted(evaluate),
    }
    if model_threshold is not None:
        report["model_threshold"] = model_threshold
        report["accuracy_at_model_threshold"] = protocol.accuracy_at(
            scores[tested], same[tested], model_threshold
        )
    return report


def evaluate_lfw(
    model_dir: Path,
    data: Path,
    folds: list[int] | None = None,
    include_seen: bool = False,
    cache_dir: Path | None = None,
    report_dir: Path | None = None,
    threads: int = 0,
) -> dict:
    pipeline = FacePipeline(model_dir, threads=threads)
    card_data = pipeline.card.data
    seen = sorted(set(card_data.get("train_folds", [])) | set(card_data.get("calibration_folds", [])))
    folds = folds or card_data.get("test_folds") or list(range(1, 11))
    seen_requested = sorted(set(folds) & set(seen))
    if seen_requested and not include_seen:
        raise ValueError(
            f"the model saw the people of fold(s) {seen_requested} in training or calibration; "
            "its accuracy there would not be a test result (use --include-seen to measure it anyway)"
        )
    lfw = LFW(data)
    pairs = lfw.pairs()
    keys = sorted({k for p in pairs for k in (p.first, p.second)})
    embedded = embed_images(pipeline, {k: lfw.path(k) for k in keys}, cache_dir)
    scores, same, pair_folds = pair_arrays(pairs, embedded["embeddings"])
    report = verification_report(scores, same, pair_folds, folds, pipeline.card.threshold)
    tested_keys = {k for p in pairs if p.fold in folds for k in (p.first, p.second)}
    report["no_face_count"] = sum(not embedded["found"][k] for k in tested_keys)
    report["n_images"] = len(tested_keys)
    report["seen_folds_included"] = seen_requested
    report["model"] = {"name": pipeline.card.name, "version": pipeline.card.version, "dir": str(model_dir)}
    report["providers"] = pipeline.providers
    if report_dir is not None:
        tested = np.isin(pair_folds, folds)
        write_plots(scores[tested], same[tested], pipeline.card.threshold, Path(report_dir))
    return report


def write_plots(scores: np.ndarray, same: np.ndarray, threshold: float, report_dir: Path) -> list[Path]:
    """ROC curve and genuine/impostor score histogram as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    report_dir.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = roc_curve(same, scores)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.semilogx(np.maximum(fpr, 1e-4), tpr)
    ax.set(
        xlabel="false accept rate",
        ylabel="true accept rate",
        title="ROC, LFW pairs",
        xlim=(1e-4, 1),
        ylim=(0, 1.01),
    )
    ax.grid(True, which="both", alpha=0.3)
    roc_path = report_dir / "roc.png"
    fig.savefig(roc_path, dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(min(-0.2, scores.min()), 1, 60)
    ax.hist(scores[same], bins, alpha=0.6, label="same person (genuine)")
    ax.hist(scores[~same], bins, alpha=0.6, label="different people (impostor)")
    ax.axvline(threshold, color="k", linestyle="--", label=f"model threshold {threshold:.3f}")
    ax.set(xlabel="cosine similarity", ylabel="pairs", title="Score distributions, LFW pairs")
    ax.legend()
    hist_path = report_dir / "scores.png"
    fig.savefig(hist_path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [roc_path, hist_path]


def format_report(report: dict) -> str:
    lines = [
        f"LFW folds {report['folds']}: {report['n_pairs']} pairs, {report['n_images']} images, "
        f"{report['no_face_count']} without a detected face (centre crop used)",
        f"accuracy (10-fold protocol)  {report['accuracy_mean']:.4f} ± {report['accuracy_std']:.4f}",
    ]
    if "accuracy_at_model_threshold" in report:
        lines.append(
            f"accuracy at model threshold  {report['accuracy_at_model_threshold']:.4f} "
            f"(cosine >= {report['model_threshold']:.4f})"
        )
    lines += [
        f"ROC AUC                      {report['auc']:.4f}",
        f"EER                          {report['eer']:.4f}",
        "TAR @ FAR 1e-3 / 1e-2        {:.4f} / {:.4f}".format(*report["tar_at_far"].values()),
    ]
    if report["seen_folds_included"]:
        lines.append(
            f"WARNING: folds {report['seen_folds_included']} were seen in training: not a test result"
        )
    return "\n".join(lines)


def save_json(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
