import numpy as np
import pytest

from facever.training.evaluation import protocol
from facever.training.evaluation.calibrate import calibrate


def test_best_threshold_on_separable_scores_is_perfect():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    threshold, accuracy = protocol.best_threshold(scores, same)
    assert accuracy == 1.0
    assert 0.3 < threshold <= 0.7


def test_best_threshold_with_one_error_each_side():
    scores = np.array([0.9, 0.8, 0.25, 0.6, 0.2, 0.1])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    _, accuracy = protocol.best_threshold(scores, same)
    assert accuracy == pytest.approx(5 / 6)


def test_ten_fold_picks_each_threshold_on_the_other_folds():
    # Folds 1 and 2 separate perfectly at 0.6. Fold 3 alone would choose 0.9, but its threshold
    # comes from folds 1 and 2 (0.6), where its impostor at 0.65 is accepted.
    scores = np.array([0.9, 0.6, 0.6, 0.4, 0.1, 0.1] * 2 + [0.9, 0.95, 0.65, 0.1])
    same = np.array([1, 1, 1, 0, 0, 0] * 2 + [1, 1, 0, 0], bool)
    folds = np.array([1] * 6 + [2] * 6 + [3] * 4)
    result = protocol.ten_fold_accuracy(scores, same, folds, evaluate=[1, 2, 3])
    assert [result["per_fold"][k]["threshold"] for k in (1, 2, 3)] == pytest.approx([0.6, 0.6, 0.6])
    assert [result["per_fold"][k]["accuracy"] for k in (1, 2, 3)] == [1.0, 1.0, 0.75]
    assert result["mean"] == pytest.approx(2.75 / 3)
    assert result["std"] == pytest.approx(np.std([1.0, 1.0, 0.75]))


def test_auc_eer_and_tar_at_far_on_known_distributions():
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(1.0, 0.1, 20000), rng.normal(0.0, 0.1, 20000)
    scores = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(20000, bool), np.zeros(20000, bool)])
    assert protocol.auc(scores, same) > 0.9999
    assert protocol.eer(scores, same) < 1e-3
    # overlapping distributions: d' = 1 -> AUC = Phi(1 / sqrt 2) = 0.7602, EER = Phi(-0.5) = 0.3085
    genuine = rng.normal(1.0, 1.0, 20000)
    scores = np.concatenate([genuine, rng.normal(0.0, 1.0, 20000)])
    assert protocol.auc(scores, same) == pytest.approx(0.7602, abs=0.01)
    assert protocol.eer(scores, same) == pytest.approx(0.3085, abs=0.01)
    tar, threshold = protocol.tar_at_far(scores, same, 1e-2)
    assert threshold == pytest.approx(2.326, abs=0.1)  # the impostors' 99th percentile
    assert tar == pytest.approx(0.0907, abs=0.015)  # P(N(1, 1) > 2.326)


def test_calibration_thresholds_hit_their_false_accept_rates():
    rng = np.random.default_rng(1)
    people = [f"p{i}" for i in range(200) for _ in range(5)]
    centres = rng.normal(size=(200, 32))
    embeddings = np.repeat(centres, 5, axis=0) + rng.normal(scale=0.8, size=(1000, 32))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    result = calibrate(embeddings, people)
    similarity = embeddings @ embeddings.T
    first, second = np.triu_indices(1000, k=1)
    names = np.array(people)
    impostor = similarity[first, second][names[first] != names[second]]
    for name, far in (("far_1e-3", 1e-3), ("far_1e-2", 1e-2)):
        accepted = np.mean(impostor >= result["thresholds"][name])
        assert accepted <= far
        assert accepted > far * 0.9
    assert (
        result["thresholds"]["far_1e-3"]
        > result["thresholds"]["far_1e-2"]
        > result["thresholds"]["best_accuracy"]
    )
