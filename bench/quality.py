"""Face quality: the share of photos and pairs that pass the enrollment gate (FACEVER_MIN_ENROLL_QUALITY),
and verification accuracy on CFP-FF and CFP-FP for the pairs both of whose faces pass versus all pairs.

Every photo goes through the service's pipeline (``FacePipeline``: MTCNN with its second pass, the
largest face, the aligned crop) and ``facever.model.quality.assess`` as the service computes it; the
embeddings are those of ``facever eval`` (cached in ``.cache``). Accuracy is the 10-fold protocol of
``training/evaluation/evaluate.py`` (each fold's threshold from the other folds), on all pairs (a photo
without a face fails its pairs) and on the pairs whose two faces pass the gate. LFW's pair photos (View 2)
give the share of ordinary photos that pass, which is how the default gate was chosen: nearly all frontal
LFW and CFP photos pass it. CFP is never used to train, select or calibrate the model.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import common
import numpy as np
from tqdm import tqdm

from facever.app.core.config import Settings
from facever.model.images import ImageError, read_image
from facever.model.quality import REASONS, assess
from facever.model.runtime import FacePipeline
from facever.training.evaluation.cfp import CFP
from facever.training.evaluation.evaluate import embed_images, first_pairs, pair_arrays, verification_report
from facever.training.evaluation.lfw import LFW

DEFAULT_GATE = Settings.model_fields["min_enroll_quality"].default
GATES = (0.3, 0.4, 0.5, 0.6, 0.7)
SMOKE_PER_FOLD = 2
SMOKE_LFW_IMAGES = 12
LFW_LABEL = "LFW (View 2 pair photos)"


def assess_photos(pipeline: FacePipeline, paths: dict[str, Path], label: str) -> dict[str, dict | None]:
    """{key: quality figures, or None when no face was found}, as the service computes them."""
    found: dict[str, dict | None] = {}
    for key in tqdm(sorted(paths), desc=f"quality {label}", unit="img"):
        image = read_image(paths[key])
        try:
            face = pipeline.choose(image)
        except ImageError:
            found[key] = None
            continue
        quality = assess(face, pipeline.crop(image, face))
        found[key] = {
            "score": quality.score,
            "scores": quality.scores,
            "inter_ocular": quality.inter_ocular,
            "sharpness": quality.sharpness,
            "yaw": quality.yaw,
            "pitch": quality.pitch,
            "brightness": quality.brightness,
        }
    return found


def passes(quality: dict | None, gate: float) -> bool:
    return quality is not None and quality["score"] >= gate


def reason(quality: dict | None, gate: float) -> str:
    if quality is None:
        return "no_face"
    if quality["score"] >= gate:
        return "passes"
    return REASONS[min(quality["scores"], key=quality["scores"].__getitem__)]


def photo_summary(qualities: dict[str, dict | None], gate: float) -> dict:
    values = list(qualities.values())
    reasons = Counter(reason(q, gate) for q in values)
    scores = np.array([q["score"] for q in values if q is not None])
    return {
        "photos": len(values),
        "pass_share": sum(passes(q, gate) for q in values) / max(1, len(values)),
        "reasons": dict(sorted(reasons.items())),
        "score_percentiles": {
            str(p): float(np.percentile(scores, p)) if len(scores) else None for p in (1, 5, 10, 50)
        },
        "pass_share_by_gate": {
            str(g): sum(passes(q, g) for q in values) / max(1, len(values)) for g in GATES
        },
    }


def cfp_protocol(pipeline, cfp: CFP, protocol, qualities, embeddings, per_fold, gate) -> dict:
    pairs = first_pairs(cfp.pairs(protocol), per_fold)
    scores, same, folds = pair_arrays(pairs, embeddings)
    both = np.array([passes(qualities[p.first], gate) and passes(qualities[p.second], gate) for p in pairs])
    threshold = pipeline.card.threshold
    result = {
        "pairs": len(pairs),
        "passing_pairs": int(both.sum()),
        "pass_share": float(both.mean()),
        "all": verification_report(scores, same, folds, sorted(set(folds.tolist())), threshold),
    }
    for name, chosen in (("passing", both), ("not_passing", ~both)):
        chosen_folds = folds[chosen]
        if len(set(chosen_folds.tolist())) > 1 and len(set(same[chosen].tolist())) == 2:
            result[name] = verification_report(
                scores[chosen], same[chosen], chosen_folds, sorted(set(chosen_folds.tolist())), threshold
            )
        else:
            result[name] = None
    by_gate = {}
    for g in GATES:
        ok = np.array([passes(qualities[p.first], g) and passes(qualities[p.second], g) for p in pairs])
        folds_ok = folds[ok]
        accuracy = None
        if len(set(folds_ok.tolist())) > 1 and len(set(same[ok].tolist())) == 2:
            report = verification_report(scores[ok], same[ok], folds_ok, sorted(set(folds_ok.tolist())), None)
            accuracy = report["accuracy_mean"]
        by_gate[str(g)] = {"pass_share": float(ok.mean()), "accuracy_mean": accuracy}
    result["by_gate"] = by_gate
    return result


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def accuracy_cell(report: dict | None) -> str:
    if report is None or report.get("accuracy_mean") is None:
        return "—"
    return f"{100 * report['accuracy_mean']:.2f} ± {100 * report['accuracy_std']:.2f} %"


def gate_cell(at_gate: dict) -> str:
    return f"{pct(at_gate['pass_share'])} ({pct(at_gate['accuracy_mean'], 2)})"


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "quality")
    parser.add_argument("--cfp", type=Path, default=common.REPO.parent / "shared" / "data" / "cfp")
    parser.add_argument("--cache", type=Path, help="embedding cache (default .cache; smoke: <out>/cache)")
    parser.add_argument("--gate", type=float, default=DEFAULT_GATE, help="minimum quality score to pass")
    parser.add_argument("--lfw-every", type=int, default=4, help="LFW: every n-th pair photo (1: all)")
    args = parser.parse_args()
    run = common.Run("quality", args)
    cache = args.cache or (Path(args.out) / "cache" if args.smoke else common.REPO / ".cache")
    per_fold = SMOKE_PER_FOLD if args.smoke else None
    pipeline = FacePipeline(args.model)
    gate = args.gate

    cfp = CFP(args.cfp)
    protocols = ("FF", "FP")
    pairs = {proto: first_pairs(cfp.pairs(proto), per_fold) for proto in protocols}
    cfp_paths = {k: cfp.path(k) for proto in protocols for p in pairs[proto] for k in (p.first, p.second)}
    lfw = LFW(args.data)
    lfw_keys = sorted({k for p in lfw.pairs() for k in (p.first, p.second)})
    if args.smoke:
        lfw_keys = lfw_keys[:: max(1, len(lfw_keys) // SMOKE_LFW_IMAGES)][:SMOKE_LFW_IMAGES]
    else:
        lfw_keys = lfw_keys[:: args.lfw_every]
    lfw_paths = {k: lfw.path(k) for k in lfw_keys}

    cfp_quality = assess_photos(pipeline, cfp_paths, "CFP")
    lfw_quality = assess_photos(pipeline, lfw_paths, "LFW")
    embeddings = embed_images(pipeline, cfp_paths, cache, "cfp")["embeddings"]

    frontal = {k: q for k, q in cfp_quality.items() if "/frontal/" in k}
    profile = {k: q for k, q in cfp_quality.items() if "/profile/" in k}
    photos = {
        LFW_LABEL: photo_summary(lfw_quality, gate),
        "CFP frontal": photo_summary(frontal, gate),
        "CFP profile": photo_summary(profile, gate),
    }
    verification = {
        f"CFP-{proto}": cfp_protocol(pipeline, cfp, proto, cfp_quality, embeddings, per_fold, gate)
        for proto in protocols
    }

    reason_names = ["passes", *REASONS.values(), "no_face"]
    tables = {
        f"Verification accuracy by face quality (gate {gate:g}, the default FACEVER_MIN_ENROLL_QUALITY; "
        "10-fold)": common.markdown_table(
            [
                "Protocol",
                "Pairs",
                "Both faces pass",
                "Accuracy, all pairs",
                "Accuracy, pairs that pass",
                "Accuracy, the other pairs",
                "AUC all / pass",
            ],
            [
                (
                    name,
                    f"{r['pairs']:,}",
                    f"{r['passing_pairs']:,} ({pct(r['pass_share'])})",
                    accuracy_cell(r["all"]),
                    accuracy_cell(r["passing"]),
                    accuracy_cell(r["not_passing"]),
                    f"{r['all']['auc']:.4f} / " + (f"{r['passing']['auc']:.4f}" if r["passing"] else "—"),
                )
                for name, r in verification.items()
            ],
        ),
        f"Photos by outcome at gate {gate:g} (the weakest aspect names the reason)": common.markdown_table(
            ["Photos", "Count", *reason_names],
            [
                (
                    name,
                    f"{s['photos']:,}",
                    *(pct(s["reasons"].get(r, 0) / max(1, s["photos"])) for r in reason_names),
                )
                for name, s in photos.items()
            ],
        ),
        "Share passing and accuracy of the passing pairs, by gate": common.markdown_table(
            [
                "Gate",
                *(f"{name} photos" for name in photos),
                *(f"{name} pairs (accuracy)" for name in verification),
            ],
            [
                (
                    f"{g:g}" + (" (default)" if g == gate else ""),
                    *(pct(s["pass_share_by_gate"][str(g)]) for s in photos.values()),
                    *(gate_cell(r["by_gate"][str(g)]) for r in verification.values()),
                )
                for g in GATES
            ],
        ),
    }
    config = {
        "model": common.model_info(args.model),
        "gate": gate,
        "gates": list(GATES),
        "per_fold": per_fold,
        "lfw_images": len(lfw_paths),
        "lfw_every": None if args.smoke else args.lfw_every,
        "cfp_images": len(cfp_paths),
    }
    run.finish(config, {"photos": photos, "verification": verification}, tables)


if __name__ == "__main__":
    main()
