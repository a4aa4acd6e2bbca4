"""The one compare-and-threshold implementation: cosine scores, the decision at the threshold, pair and
all-vs-all scores, thresholds for a false accept rate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from facever.model.matching import (
    all_pairs,
    best_match,
    is_match,
    match_rate,
    pair_scores,
    similarities,
    similarity,
    threshold_at_far,
)


def unit(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_similarity_is_the_cosine_of_unit_vectors():
    a, b = unit(np.random.default_rng(0), 2)
    assert float(similarity(a, a)) == pytest.approx(1.0, abs=1e-6)
    assert float(similarity(a, -a)) == pytest.approx(-1.0, abs=1e-6)
    assert float(similarity(a, b)) == pytest.approx(float(np.dot(a, b)) / 1.0, abs=1e-6)


def test_the_decision_is_score_at_or_above_the_threshold_and_nan_never_matches():
    assert is_match(0.5, 0.5) is True
    assert is_match(0.4999, 0.5) is False
    assert is_match(float("nan"), -1.0) is False
    np.testing.assert_array_equal(is_match(np.array([0.2, 0.5, np.nan]), 0.5), [False, True, False])


def test_best_match_is_the_most_similar_template():
    rng = np.random.default_rng(1)
    templates = unit(rng, 5)
    probe = templates[3] + 0.01 * unit(rng, 1)[0]
    probe /= np.linalg.norm(probe)
    best, score = best_match(probe, templates)
    assert best == 3
    assert score == pytest.approx(float(similarities(probe, templates).max()))


def test_pair_scores_by_key_with_nan_for_a_photo_without_face():
    rng = np.random.default_rng(2)
    a, b = unit(rng, 2)
    embeddings = {"a": a, "b": b, "none": np.full(8, np.nan, np.float32)}
    pairs = [SimpleNamespace(first="a", second="b"), SimpleNamespace(first="a", second="none")]
    scores = pair_scores(embeddings, pairs)
    assert scores[0] == pytest.approx(float(a @ b), abs=1e-6) and np.isnan(scores[1])
    distances = pair_scores(embeddings, pairs[:1], metric="euclidean")
    assert distances[0] == pytest.approx(-float(np.linalg.norm(a - b)), abs=1e-6)


def test_all_pairs_scores_every_unordered_pair_once():
    rng = np.random.default_rng(3)
    vectors = unit(rng, 4)
    scores, same = all_pairs(vectors, ["x", "x", "y", "z"])
    assert len(scores) == 6 and same.tolist() == [True, False, False, False, False, False]
    assert scores[0] == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-6)
    euclidean, _ = all_pairs(vectors, ["x", "x", "y", "z"], metric="euclidean")
    assert euclidean[0] == pytest.approx(-float(np.linalg.norm(vectors[0] - vectors[1])), abs=1e-5)


@pytest.mark.parametrize("far", [1e-3, 1e-2, 0.1])
def test_threshold_at_far_accepts_at_most_that_share_of_impostors(far):
    impostors = np.random.default_rng(4).uniform(-1, 1, 10_000)
    threshold = threshold_at_far(impostors, far)
    assert match_rate(impostors, threshold) <= far
    # the smallest such threshold: one impostor more would be accepted just below it
    assert match_rate(impostors, float(np.nextafter(threshold, -np.inf))) > far
