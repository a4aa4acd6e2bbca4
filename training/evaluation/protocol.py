"""Verification metrics on pair scores (higher score = more alike), and the LFW 10-fold protocol.

The LFW View 2 protocol: for each fold k, choose the decision threshold that maximises accuracy
on the other nine folds, measure accuracy on fold k; report mean and standard deviation.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from facever.model.matching import is_match

# A failed pair's stand-in score: beyond any cosine similarity (or minus distance), on the wrong side of
# every threshold.
FAILED_SAME, FAILED_DIFFERENT = -10.0, 10.0


def failed_as_wrong(scores: np.ndarray, same: np.ndarray) -> np.ndarray:
    """``scores`` with every failed pair (NaN: a photo without a face) made wrong at every threshold, as
    a user of the service would see it: a same-person pair scores lowest, a different-person pair
    highest."""
    scores = np.asarray(scores, np.float64)
    return np.where(np.isnan(scores), np.where(same, FAILED_SAME, FAILED_DIFFERENT), scores)


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean(is_match(np.asarray(scores), threshold) == np.asarray(same, bool)))


def best_threshold(scores: np.ndarray, same: np.ndarray, balanced: bool = False) -> tuple[float, float]:
    """The threshold (a score; pairs at or above it are "same") with the best accuracy, and that accuracy.

    ``balanced`` weighs both kinds of pair equally ((TPR + TNR) / 2), for pair sets that are not 50/50.
    """
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    fpr, tpr, thresholds = roc_curve(same, scores, drop_intermediate=False)
    positives, negatives = same.sum(), (~same).sum()
    if balanced:
        accuracy = (tpr + (1 - fpr)) / 2
    else:
        accuracy = (tpr * positives + (1 - fpr) * negatives) / (positives + negatives)
    best = int(np.argmax(accuracy[1:])) + 1  # index 0 is roc_curve's "+inf" threshold
    return float(thresholds[best]), float(accuracy[best])


def auc(scores: np.ndarray, same: np.ndarray) -> float:
    return float(roc_auc_score(same, scores))


def eer(scores: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where the false accept rate equals the false reject rate."""
    fpr, tpr, _ = roc_curve(same, scores)
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """True accept rate at the largest false accept rate not above ``far``, and its threshold."""
    fpr, tpr, thresholds = roc_curve(same, scores)
    ok = np.nonzero(fpr <= far)[0]
    i = ok[-1]
    return float(tpr[i]), float(thresholds[i])


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray, evaluate: list[int]) -> dict:
    """LFW protocol for the folds in ``evaluate``: threshold from the other folds present, accuracy on k."""
    scores, same, folds = np.asarray(scores), np.asarray(same, bool), np.asarray(folds)
    per_fold = {}
    for k in evaluate:
        train = folds != k
        threshold, _ = best_threshold(scores[train], same[train])
        test = folds == k
        per_fold[k] = {"threshold": threshold, "accuracy": accuracy_at(scores[test], same[test], threshold)}
    accuracies = [v["accuracy"] for v in per_fold.values()]
    return {"per_fold": per_fold, "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies))}
