"""``facever eval lfw`` and ``facever eval cfp``: verification protocols on an exported model, through
the service's own runtime.

Images go through the same decoding, detection, face choice (the largest face), alignment and ONNX
embedding as in the service. An image in which no face is found has no embedding, as the service
would refuse it: each pair it is in counts as failed (a wrong answer at every threshold) in the
accuracies, and is left out of AUC, EER and TAR, which are computed on the pairs that were scored.
The calibrated probability of the model card (when it has a map) is judged on the scored pairs too: the
Brier score, the expected calibration error over 10 equal-width bins, and a reliability diagram.
LFW folds whose people the model saw in training or threshold calibration (per its model card) are refused
unless asked for explicitly, and then marked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facever.model.card import ONNX_FILE, ModelCard, ProbabilityMap
from facever.model.images import read_image
from facever.model.matching import Metric, all_pairs, match_rate, pair_scores, threshold_at_far
from facever.model.runtime import FacePipeline
from facever.training.cache import save_npz
from facever.training.evaluation import protocol
from facever.training.evaluation.cfp import CFP, Protocol
from facever.training.evaluation.lfw import LFW, Pair

FARS = {"1e-3": 1e-3, "1e-2": 1e-2}
CALIBRATION_BINS = 10


def embed_images(
    pipeline: FacePipeline, paths: dict[str, Path], cache_dir: Path | None = None, tag: str = "images"
) -> dict:
    """{"embeddings": {key: vector, NaN where no face}, "found": {key: bool}}, cached per model.

    ``tag`` names the cache file (one per data set), which keeps every key it ever embedded.
    """
    cache_file = None
    cached: dict[str, tuple[np.ndarray, bool]] = {}
    if cache_dir is not None:
        # what decides an embedding: the network, its card (crop framing, flip) and the detector
        recipe = hashlib.sha256((pipeline.embedder.model_dir / ONNX_FILE).read_bytes())
        decisive = pipeline.card.model_dump_json(include={"input", "alignment", "flip_test_time"})
        recipe.update(decisive.encode())
        recipe.update(repr(pipeline.detector.config).encode())
        recipe.update(b"rgb-no-fallback-largest-visible-box")
        cache_file = Path(cache_dir) / f"embeddings-{tag}-{recipe.hexdigest()[:16]}.npz"
        if cache_file.exists():
            data = np.load(cache_file)
            rows = zip(data["embeddings"], data["found"], strict=True)
            cached = dict(zip(data["keys"].tolist(), rows, strict=True))
    missing = sorted(k for k in paths if k not in cached)
    for key in tqdm(missing, desc="embed", unit="img", disable=not missing):
        embedding, face = pipeline.embed_chosen(read_image(paths[key]))
        if embedding is None:
            embedding = np.full(pipeline.card.embedding_size, np.nan, np.float32)
        cached[key] = (embedding, face is not None)
    if cache_file is not None and missing:
        keys = sorted(cached)
        save_npz(
            cache_file,
            keys=np.array(keys),
            embeddings=np.stack([cached[k][0] for k in keys]),
            found=np.array([cached[k][1] for k in keys]),
        )
    return {"embeddings": {k: cached[k][0] for k in paths}, "found": {k: bool(cached[k][1]) for k in paths}}


def pair_arrays(
    pairs: list[Pair], embeddings: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine similarities (NaN where an image has no face), same-person flags and folds of ``pairs``."""
    scores = pair_scores(embeddings, pairs)
    return scores, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])


def calibration_metrics(probabilities: np.ndarray, same: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """How well probabilities of the same person match the outcomes: the Brier score (mean squared error
    of the probability against 1 for same, 0 for different), the expected calibration error (over
    ``bins`` equal-width bins of probability, each bin's |share of same-person pairs - mean probability|
    weighted by its share of the pairs) and the reliability table behind it (empty bins left out)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    outcome = np.asarray(same, dtype=np.float64)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        mean_probability, fraction_same = float(probabilities[inside].mean()), float(outcome[inside].mean())
        ece += inside.mean() * abs(fraction_same - mean_probability)
        table.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "pairs": int(inside.sum()),
                "mean_probability": mean_probability,
                "fraction_same": fraction_same,
            }
        )
    return {
        "brier": float(np.mean((probabilities - outcome) ** 2)),
        "ece": float(ece),
        "bins": bins,
        "reliability": table,
    }


def verification_report(
    scores: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray,
    evaluate: list[int],
    model_threshold: float | None,
    probability: ProbabilityMap | None = None,
) -> dict:
    """Every figure of the report for the folds in ``evaluate``.

    The 10-fold accuracy of fold k uses the threshold best on the other folds present in ``folds``;
    with one fold present it is not defined (None). Failed pairs (NaN score) count as wrong. With a
    ``probability`` map, its Brier score and ECE on the scored pairs (``calibration``).
    """
    failed = np.isnan(scores)
    forced = protocol.failed_as_wrong(scores, same)
    tested = np.isin(folds, evaluate)
    scored = tested & ~failed
    report: dict = {"folds": sorted(evaluate), "n_pairs": int(tested.sum())}
    if len(set(folds.tolist())) > 1:
        ten_fold = protocol.ten_fold_accuracy(forced, same, folds, evaluate)
        report |= {
            "accuracy_mean": ten_fold["mean"],
            "accuracy_std": ten_fold["std"],
            "per_fold": {str(k): v for k, v in ten_fold["per_fold"].items()},
        }
    else:
        report |= {"accuracy_mean": None, "accuracy_std": None, "per_fold": {}}
    report |= {
        "failed_pairs": int((tested & failed).sum()),
        "n_pairs_scored": int(scored.sum()),
        "auc": protocol.auc(scores[scored], same[scored]),
        "eer": protocol.eer(scores[scored], same[scored]),
        "tar_at_far": {
            name: protocol.tar_at_far(scores[scored], same[scored], far)[0] for name, far in FARS.items()
        },
    }
    if model_threshold is not None:
        report["model_threshold"] = model_threshold
        report["accuracy_at_model_threshold"] = protocol.accuracy_at(
            forced[tested], same[tested], model_threshold
        )
    if probability is not None and scored.any():
        report["calibration"] = calibration_metrics(probability(scores[scored]), same[scored])
    return report


def _score_pairs(
    pipeline: FacePipeline,
    pairs: list[Pair],
    paths: dict[str, Path],
    folds: list[int],
    cache_dir: Path | None,
    tag: str,
    report_dir: Path | None,
    title: str,
) -> tuple[dict, dict]:
    embedded = embed_images(pipeline, paths, cache_dir, tag)
    scores, same, pair_folds = pair_arrays(pairs, embedded["embeddings"])
    card = pipeline.card
    report = verification_report(scores, same, pair_folds, folds, card.threshold, card.probability)
    tested_keys = {k for p in pairs if p.fold in folds for k in (p.first, p.second)}
    report["no_face_count"] = sum(not embedded["found"][k] for k in tested_keys)
    report["n_images"] = len(tested_keys)
    report["model"] = {"name": pipeline.card.name, "version": pipeline.card.version}
    report["providers"] = pipeline.providers
    if report_dir is not None:
        tested = np.isin(pair_folds, folds) & ~np.isnan(scores)
        probabilities = None if card.probability is None else card.probability(scores[tested])
        write_plots(scores[tested], same[tested], card.threshold, Path(report_dir), title, probabilities)
    return report, embedded


def first_pairs(pairs: list[Pair], per_fold: int | None) -> list[Pair]:
    """The first ``per_fold`` same and different pairs of every fold (quick runs); all when None."""
    if per_fold is None:
        return pairs
    counts: dict[tuple[int, bool], int] = {}
    chosen = []
    for pair in pairs:
        key = (pair.fold, pair.same)
        if counts.get(key, 0) < per_fold:
            counts[key] = counts.get(key, 0) + 1
            chosen.append(pair)
    return chosen


def evaluate_lfw(
    model_dir: Path,
    data: Path,
    folds: list[int] | None = None,
    include_seen: bool = False,
    cache_dir: Path | None = None,
    report_dir: Path | None = None,
    threads: int = 0,
    per_fold: int | None = None,
) -> dict:
    """LFW View 2 on ``folds``; only the images of those folds' pairs are embedded."""
    pipeline = FacePipeline(model_dir, threads=threads)
    card_data = pipeline.card.data  # typed: a card without these folds does not load
    seen = sorted(set(card_data.train_folds) | set(card_data.calibration_folds))
    folds = sorted(folds or card_data.test_folds or range(1, 11))
    seen_requested = sorted(set(folds) & set(seen))
    if seen_requested and not include_seen:
        raise ValueError(
            f"the model saw the people of fold(s) {seen_requested} in training or threshold calibration; "
            "its accuracy there would not be a test result (use --include-seen to measure it anyway)"
        )
    lfw = LFW(data)
    pairs = first_pairs([p for p in lfw.pairs() if p.fold in folds], per_fold)
    paths = {k: lfw.path(k) for p in pairs for k in (p.first, p.second)}
    report, _ = _score_pairs(pipeline, pairs, paths, folds, cache_dir, "lfw", report_dir, "LFW pairs")
    report["dataset"] = "LFW View 2"
    report["seen_folds_included"] = seen_requested
    report["model"]["dir"] = str(model_dir)
    return report


def evaluate_cfp(
    model_dir: Path,
    data: Path,
    protocol_name: Protocol = "FF",
    cache_dir: Path | None = None,
    report_dir: Path | None = None,
    threads: int = 0,
    per_fold: int | None = None,
) -> dict:
    """CFP FF or FP, all ten folds. FF also scores every pair of frontal photos (all-vs-all): the true
    accept rate at a low false accept rate, and the false accept rate each card threshold gives.
    ``per_fold`` keeps only the first pairs of each fold, and all-vs-all only their photos (quick runs)."""
    pipeline = FacePipeline(model_dir, threads=threads)
    cfp = CFP(data)
    pairs = first_pairs(cfp.pairs(protocol_name), per_fold)
    paths = {k: cfp.path(k) for p in pairs for k in (p.first, p.second)}
    if protocol_name == "FF" and per_fold is None:
        paths |= {k: cfp.path(k) for keys in cfp.frontal_people().values() for k in keys}
    folds = list(range(1, 11))
    report, embedded = _score_pairs(
        pipeline, pairs, paths, folds, cache_dir, "cfp", report_dir, f"CFP-{protocol_name} pairs"
    )
    report["dataset"] = f"CFP-{protocol_name}"
    report["seen_folds_included"] = []
    report["model"]["dir"] = str(model_dir)
    if protocol_name == "FF":
        keys = sorted(k for k in paths if embedded["found"][k])
        vectors = np.stack([embedded["embeddings"][k] for k in keys])
        report["all_vs_all"] = all_vs_all(
            vectors, [k.split("/")[0] for k in keys], pipeline.card.thresholds.model_dump(by_alias=True)
        )
    return report


CARD_METRICS: tuple[str, ...] = (  # the figures kept in the model card
    "folds",
    "n_pairs",
    "accuracy_mean",
    "accuracy_std",
    "accuracy_at_model_threshold",
    "auc",
    "eer",
    "tar_at_far",
    "no_face_count",
    "failed_pairs",
    "n_images",
    "dataset",
    "all_vs_all",
    "calibration",
)


def evaluate_into_card(model_dir: Path, lfw: Path, cfp: Path, cache: Path) -> dict[str, dict]:
    """LFW fold 10 on its own, all the card's test folds, and CFP FF and FP when there; the figures go
    into the model card."""
    card = ModelCard.load(model_dir)
    reports = {"lfw_fold10": evaluate_lfw(model_dir, lfw, [10], cache_dir=cache)}
    if card.data.test_folds != [10]:
        reports["lfw"] = evaluate_lfw(model_dir, lfw, cache_dir=cache)
    if (cfp / "Protocol").is_dir():
        for protocol in ("FF", "FP"):
            reports[f"cfp_{protocol.lower()}"] = evaluate_cfp(model_dir, cfp, protocol, cache)
    card.metrics = {
        name: {k: report[k] for k in CARD_METRICS if k in report} for name, report in reports.items()
    }
    card.save(model_dir)
    return reports


def all_vs_all(
    embeddings: np.ndarray,
    people: list[str],
    thresholds: dict[str, float | None],
    metric: Metric = "cosine",
) -> dict:
    """Every unordered pair of distinct images: TAR at FAR 1e-3 and 1e-4, and the FAR and TAR that each
    named threshold gives. Scores are cosine similarities, or minus the Euclidean distance."""
    scores, same = all_pairs(embeddings, people, metric)
    impostors, genuine = scores[~same], scores[same]
    result: dict = {"images": len(people), "genuine_pairs": int(same.sum()), "impostor_pairs": len(impostors)}
    result["tar_at_far"] = {
        name: match_rate(genuine, threshold_at_far(impostors, far))
        for name, far in (("1e-3", 1e-3), ("1e-4", 1e-4))
    }
    result["at_card_thresholds"] = {
        name: {"threshold": value, "far": match_rate(impostors, value), "tar": match_rate(genuine, value)}
        for name, value in thresholds.items()
        if value is not None
    }
    # Where the scores lie, so that a reader can tell what a score means for this model.
    result["scores"] = {
        kind: {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
        for kind, values in (("genuine", genuine), ("impostor", impostors))
        if len(values)
    }
    return result


def write_plots(
    scores: np.ndarray,
    same: np.ndarray,
    threshold: float,
    report_dir: Path,
    title: str = "LFW pairs",
    probabilities: np.ndarray | None = None,
) -> list[Path]:
    """ROC curve and genuine/impostor score histogram as PNG files, and with ``probabilities`` (the
    calibrated probability of each pair) a reliability diagram."""
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
        title=f"ROC, {title}",
        xlim=(1e-4, 1),
        ylim=(0, 1.01),
    )
    ax.grid(True, which="both", alpha=0.3)
    roc_path = report_dir / "roc.png"
    fig.savefig(roc_path, dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(min(-0.2, scores.min()), 1, 60).tolist()
    ax.hist(scores[same], bins, alpha=0.6, label="same person (genuine)")
    ax.hist(scores[~same], bins, alpha=0.6, label="different people (impostor)")
    ax.axvline(threshold, color="k", linestyle="--", label=f"model threshold {threshold:.3f}")
    ax.set(xlabel="cosine similarity", ylabel="pairs", title=f"Score distributions, {title}")
    ax.legend()
    hist_path = report_dir / "scores.png"
    fig.savefig(hist_path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    if probabilities is None:
        return [roc_path, hist_path]

    metrics = calibration_metrics(probabilities, same)
    table = metrics["reliability"]
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.bar(
        [row["low"] for row in table],
        [row["fraction_same"] for row in table],
        width=1 / metrics["bins"],
        align="edge",
        alpha=0.6,
        edgecolor="k",
        label="share of same-person pairs",
    )
    ax.plot(
        [row["mean_probability"] for row in table],
        [row["fraction_same"] for row in table],
        "o-",
        color="C3",
        label="at the bin's mean probability",
    )
    ax.set(
        ylabel="share of same-person pairs",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title=f"Reliability, {title}\nBrier {metrics['brier']:.4f}, ECE {metrics['ece']:.4f} "
        f"({metrics['bins']} bins)",
    )
    ax.legend(loc="upper left")
    counts.bar(
        [row["low"] for row in table],
        [row["pairs"] for row in table],
        width=1 / metrics["bins"],
        align="edge",
        edgecolor="k",
    )
    counts.set(xlabel="calibrated probability of the same person", ylabel="pairs", yscale="log")
    reliability_path = report_dir / "reliability.png"
    fig.savefig(reliability_path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [roc_path, hist_path, reliability_path]


def format_report(report: dict) -> str:
    name = report.get("dataset", "LFW View 2")
    lines = [
        f"{name} folds {report['folds']}: {report['n_pairs']} pairs, {report['n_images']} images, "
        f"{report['no_face_count']} without a detected face ({report['failed_pairs']} pairs failed)",
    ]
    if report["accuracy_mean"] is not None:
        lines.append(
            f"accuracy (10-fold protocol)  {report['accuracy_mean']:.4f} ± {report['accuracy_std']:.4f}"
        )
    if "accuracy_at_model_threshold" in report:
        lines.append(
            f"accuracy at model threshold  {report['accuracy_at_model_threshold']:.4f} "
            f"(cosine >= {report['model_threshold']:.4f})"
        )
    lines += [
        f"ROC AUC                      {report['auc']:.4f}   (on {report['n_pairs_scored']} scored pairs)",
        f"EER                          {report['eer']:.4f}",
        "TAR @ FAR 1e-3 / 1e-2        {:.4f} / {:.4f}".format(*report["tar_at_far"].values()),
    ]
    if "calibration" in report:
        calibration = report["calibration"]
        lines.append(
            f"probability: Brier / ECE     {calibration['brier']:.4f} / {calibration['ece']:.4f}   "
            f"({calibration['bins']} bins, equal prior)"
        )
    if "all_vs_all" in report:
        every = report["all_vs_all"]
        lines.append(
            f"all-vs-all ({every['genuine_pairs']:,} genuine, {every['impostor_pairs']:,} impostor pairs): "
            "TAR @ FAR 1e-3 / 1e-4 {:.4f} / {:.4f}".format(*every["tar_at_far"].values())
        )
        for label, point in every["at_card_thresholds"].items():
            lines.append(
                f"  card threshold {label:<13} {point['threshold']:.4f}: "
                f"FAR {point['far']:.2e}, TAR {point['tar']:.4f}"
            )
        for kind, spread in every.get("scores", {}).items():
            lines.append(
                f"  {kind} scores: mean {spread['mean']:.4f}, from {spread['min']:.4f} to {spread['max']:.4f}"
            )
    if report["seen_folds_included"]:
        lines.append(
            f"WARNING: the people of folds {report['seen_folds_included']} were used in training or "
            "threshold calibration: not a test result"
        )
    return "\n".join(lines)


def save_json(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
