"""Threshold calibration on people that were neither trained on nor tested on.

Every pair of the calibration people's images is scored: all same-person pairs and all
different-person pairs. The default threshold maximises balanced accuracy ((TPR + TNR) / 2,
the LFW protocol's 50/50 setting); the others give a false accept rate of 1e-2, 1e-3 and 1e-4.
The probability map is a logistic regression of the same-person flag on the score, fitted with the
same-person and different-person pairs weighted to count equally (the same 50/50 setting).
"""

from __future__ import annotations

import numpy as np

from facever.model.matching import all_pairs, match_rate, threshold_at_far
from facever.training.evaluation import protocol

FARS = {"far_1e-2": 1e-2, "far_1e-3": 1e-3, "far_1e-4": 1e-4}


def fit_logistic(scores: np.ndarray, same: np.ndarray, iterations: int = 100) -> dict[str, float]:
    """Slope and intercept of P(same | score) = 1 / (1 + exp(-(slope * score + intercept))), maximising the
    likelihood with each class weighted to half the total (an equal prior, however unbalanced the pairs).
    Newton's method on the standardised score, halving a step that does not lower the loss."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("the probability map needs both same-person and different-person pairs")
    weights = np.where(same, 0.5 / same.sum(), 0.5 / (~same).sum())
    centre, spread = float(scores.mean()), float(scores.std()) or 1.0
    x = np.stack([(scores - centre) / spread, np.ones_like(scores)], axis=1)
    y = same.astype(np.float64)

    def loss(theta: np.ndarray) -> float:
        z = x @ theta
        return float(weights @ (np.logaddexp(0.0, z) - y * z))

    theta = np.zeros(2)
    current = loss(theta)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        gradient = x.T @ (weights * (p - y))
        hessian = (x * (weights * p * (1 - p))[:, None]).T @ x
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        scale = 1.0
        while scale > 1e-6 and loss(theta - scale * step) > current:
            scale /= 2
        theta = theta - scale * step
        previous, current = current, loss(theta)
        if previous - current < 1e-12:
            break
    slope = theta[0] / spread
    return {"slope": float(slope), "intercept": float(theta[1] - slope * centre)}


def calibrate(embeddings: np.ndarray, people: list[str]) -> dict:
    scores, same = all_pairs(embeddings, people)
    best, balanced_accuracy = protocol.best_threshold(scores, same, balanced=True)
    thresholds = {"best_accuracy": best}
    thresholds |= {name: threshold_at_far(scores[~same], far) for name, far in FARS.items()}
    return {
        "thresholds": thresholds,
        # None: no map without both kinds of pairs
        "probability": fit_logistic(scores, same) if 0 < same.sum() < len(same) else None,
        "balanced_accuracy": balanced_accuracy,
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
        "tar_at_far": {name: match_rate(scores[same], thresholds[name]) for name in FARS},
    }
