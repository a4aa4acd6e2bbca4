"""Threshold calibration on people that were neither trained on nor tested on.

Every pair of the calibration people's images is scored: all same-person pairs and all
different-person pairs. The default threshold maximises balanced accuracy ((TPR + TNR) / 2,
the LFW protocol's 50/50 setting); the others give a false accept rate of 1e-2, 1e-3 and 1e-4.
"""

from __future__ import annotations

import numpy as np

from facever.training import protocol

FARS = {"far_1e-2": 1e-2, "far_1e-3": 1e-3, "far_1e-4": 1e-4}


def all_pairs(
    embeddings: np.ndarray, people: list[str], metric: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Score and same-person flag of every unordered pair of distinct images: the cosine similarity of
    unit vectors, or minus the Euclidean distance (``metric="euclidean"``, dlib's)."""
    similarity = embeddings @ embeddings.T
    if metric == "euclidean":
        squared = (embeddings * embeddings).sum(1)
        similarity = -np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * similarity, 0.0))
    first, second = np.triu_indices(len(people), k=1)
    names = np.asarray(people)
    return similarity[first, second], names[first] == names[second]


def calibrate(embeddings: np.ndarray, people: list[str]) -> dict:
    scores, same = all_pairs(embeddings, people)
    best, balanced_accuracy = protocol.best_threshold(scores, same, balanced=True)
    impostors = np.sort(scores[~same])
    thresholds = {"best_accuracy": best}
    for name, far in FARS.items():
        # the smallest threshold at which at most far of the impostor pairs are accepted
        allowed = int(np.floor(far * len(impostors)))
        thresholds[name] = float(np.nextafter(impostors[len(impostors) - allowed - 1], np.inf))
    return {
        "thresholds": thresholds,
        "balanced_accuracy": balanced_accuracy,
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
        "tar_at_far": {
            name: float(np.mean(scores[same] >= thresholds[name])) for name in FARS
        },
    }
