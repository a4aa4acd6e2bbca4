"""The probability map fitted on the calibration pairs: monotone, in [0, 1], 0.5 at the equal-prior point."""

from __future__ import annotations

import numpy as np
import pytest

from facever.model.card import ModelCard, ProbabilityMap
from facever.training.evaluation.calibrate import calibrate, fit_logistic


def unbalanced_scores(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Like the calibration pairs: few same-person pairs (mean 0.96), many different (0.83), equal spread."""
    same = rng.normal(0.96, 0.02, 20_000)
    different = rng.normal(0.83, 0.02, 400_000)
    return np.concatenate([same, different]), np.concatenate([np.ones(20_000, bool), np.zeros(400_000, bool)])


def test_logistic_map_is_monotone_bounded_and_even_at_the_equal_prior_point():
    scores, same = unbalanced_scores(np.random.default_rng(0))
    mapping = ProbabilityMap(**fit_logistic(scores, same))
    grid = np.linspace(-1, 1, 2001)
    probabilities = mapping(grid)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert np.all(np.diff(probabilities) >= 0)
    assert probabilities[0] < 1e-6 and probabilities[-1] > 1 - 1e-6
    # equal variances and weights: the log likelihood ratio is 0 midway between the means, whatever the
    # imbalance of the pairs (1:20 here)
    assert mapping.equal_odds_score == pytest.approx(0.895, abs=0.002)
    assert mapping(mapping.equal_odds_score) == pytest.approx(0.5)
    assert mapping(0.96) > 0.99 and mapping(0.83) < 0.01
    # the true log likelihood ratio's slope: (0.96 - 0.83) / 0.02 ** 2 = 325
    assert mapping.slope == pytest.approx(325, rel=0.15)
    assert isinstance(mapping(0.9), float)


def test_fit_refuses_a_single_class():
    with pytest.raises(ValueError):
        fit_logistic(np.array([0.1, 0.2]), np.array([True, True]))


def test_calibrate_fits_the_map_on_every_pair():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16))
    people = [f"p{i}" for i in range(20) for _ in range(3)]
    embeddings = np.repeat(centres, 3, axis=0) + 1.5 * rng.normal(size=(60, 16))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    result = calibrate(embeddings.astype(np.float32), people)
    mapping = ProbabilityMap(**result["probability"])
    assert mapping.slope > 0
    threshold = result["thresholds"]["best_accuracy"]
    assert 0.2 < mapping(threshold) < 0.8


@pytest.mark.parametrize("name", ["default", "float"])
def test_shipped_cards_have_a_map_even_at_their_verify_threshold(name):
    card = ModelCard.load(f"model/{name}")
    assert card.probability is not None and card.probability.method == "logistic"
    assert card.probability.prior == 0.5
    # the best balanced-accuracy threshold and the 50 % point of the map are two equal-prior estimates
    # of the same cosine; they agree within 0.003 (the map is steep: 0.002 of cosine is 0.08 of
    # probability, and fold 9's balanced accuracy is flat over a few thousandths)
    midpoint = -card.probability.intercept / card.probability.slope
    assert midpoint == pytest.approx(card.threshold, abs=0.003)
    assert 0.35 < card.probability(card.threshold) < 0.65
    assert card.probability(card.identify_threshold) > 0.99
    assert np.all(np.diff(card.probability(np.linspace(-1, 1, 201))) >= 0)
