"""The evaluation scores pairs the way the service answers them: a photo without a face fails its pairs."""

import numpy as np
import pytest

from facever.training.evaluation.cfp import CFP
from facever.training.evaluation.evaluate import all_vs_all, format_report, verification_report


def test_a_pair_with_no_face_is_wrong_at_every_threshold():
    folds = np.repeat(np.arange(1, 11), 20)
    same = np.tile([True] * 10 + [False] * 10, 10)
    scores = np.where(same, 0.8, 0.1)  # perfectly separable
    clean = verification_report(scores, same, folds, list(range(1, 11)), 0.45)
    assert clean["accuracy_mean"] == 1.0 and clean["accuracy_at_model_threshold"] == 1.0

    failed = scores.copy()
    failed[[0, 15]] = np.nan  # fold 1: one same pair, one different pair without a face
    report = verification_report(failed, same, folds, list(range(1, 11)), 0.45)
    assert report["failed_pairs"] == 2 and report["n_pairs_scored"] == len(same) - 2
    assert report["per_fold"]["1"]["accuracy"] == pytest.approx(18 / 20)
    assert report["accuracy_at_model_threshold"] == pytest.approx(1 - 2 / len(same))
    assert report["auc"] == 1.0  # AUC, EER and TAR are on the scored pairs only


def test_one_fold_has_no_ten_fold_accuracy_but_has_the_models_own():
    same = np.array([True, True, False, False])
    report = verification_report(np.array([0.9, 0.7, 0.2, 0.7]), same, np.full(4, 10), [10], 0.65)
    assert report["accuracy_mean"] is None
    assert report["accuracy_at_model_threshold"] == 0.75


def test_all_vs_all_reports_the_far_each_threshold_gives():
    rng = np.random.default_rng(1)
    people = np.repeat(np.arange(50), 4)
    centres = rng.normal(size=(50, 16))
    vectors = centres[people] + rng.normal(0, 0.3, (200, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    result = all_vs_all(vectors, [str(p) for p in people], {"loose": -1.0, "strict": 1.01})
    assert result["genuine_pairs"] == 50 * 6 and result["impostor_pairs"] == 200 * 199 // 2 - 300
    assert result["at_card_thresholds"]["loose"]["far"] == 1.0
    assert result["at_card_thresholds"]["strict"] == {"threshold": 1.01, "far": 0.0, "tar": 0.0}
    assert 0.9 < result["tar_at_far"]["1e-3"] <= 1.0
    scores = vectors @ vectors.T
    same = people[:, None] == people[None, :]
    pairs = np.triu(np.ones_like(same), 1).astype(bool)
    genuine, impostor = result["scores"]["genuine"], result["scores"]["impostor"]
    assert genuine["mean"] == pytest.approx(scores[same & pairs].mean())
    assert impostor["max"] == pytest.approx(scores[~same & pairs].max())
    assert impostor["min"] < impostor["mean"] < genuine["mean"] <= genuine["max"] <= 1.0 + 1e-6


def test_cfp_protocols_have_ten_identity_disjoint_folds(cfp_root):
    cfp = CFP(cfp_root)
    for protocol in ("FF", "FP"):
        pairs = cfp.pairs(protocol)
        assert len(pairs) == 7000 and sum(p.same for p in pairs) == 3500
        assert all((p.first.split("/")[0] == p.second.split("/")[0]) == p.same for p in pairs)
        people = {}
        for p in pairs:
            people.setdefault(p.fold, set()).update({p.first.split("/")[0], p.second.split("/")[0]})
        assert all(not people[a] & people[b] for a in people for b in people if a != b)
        second_view = {p.second.split("/")[1] for p in pairs}
        assert second_view == ({"frontal"} if protocol == "FF" else {"profile"})
        assert cfp.path(pairs[0].first).is_file() and cfp.path(pairs[-1].second).is_file()


def test_a_report_on_seen_folds_says_they_were_used_in_training_or_calibration():
    folds = np.repeat(np.arange(1, 11), 20)
    same = np.tile([True] * 10 + [False] * 10, 10)
    report = verification_report(np.where(same, 0.8, 0.1), same, folds, list(range(1, 11)), 0.45)
    report |= {"folds": list(range(1, 11)), "n_pairs": 200, "n_images": 400, "no_face_count": 0}
    report["seen_folds_included"] = [1, 9]
    warning = format_report(report).splitlines()[-1]
    assert warning == (
        "WARNING: the people of folds [1, 9] were used in training or threshold calibration: "
        "not a test result"
    )
    assert "seen in training" not in format_report(report)


def test_brier_score_and_expected_calibration_error_on_a_toy_example():
    from facever.training.evaluation.evaluate import calibration_metrics

    probabilities = np.array([0.15, 0.15, 0.85, 0.85, 0.85, 0.85])
    same = np.array([False, False, True, True, True, False])
    result = calibration_metrics(probabilities, same)
    # Brier: five pairs off by 0.15, one by 0.85
    assert result["brier"] == pytest.approx((5 * 0.15**2 + 0.85**2) / 6)
    # ECE: bin [0.1, 0.2) holds 2 pairs, none same (|0 - 0.15|);
    # bin [0.8, 0.9) 4 pairs, 3 same (|0.75 - 0.85|)
    assert result["ece"] == pytest.approx(2 / 6 * 0.15 + 4 / 6 * 0.10)
    assert [(row["low"], row["pairs"]) for row in result["reliability"]] == [
        (pytest.approx(0.1), 2),
        (pytest.approx(0.8), 4),
    ]
    perfect = calibration_metrics(np.array([0.0, 1.0, 1.0]), np.array([False, True, True]))
    assert perfect["brier"] == 0 and perfect["ece"] == 0  # 1.0 falls in the last bin


def test_the_report_judges_the_card_probability_on_scored_pairs(tmp_path):
    from facever.model.card import ProbabilityMap
    from facever.training.evaluation.evaluate import calibration_metrics, write_plots

    mapping = ProbabilityMap(slope=20.0, intercept=-10.0)
    same = np.array([True, True, False, False, True])
    scores = np.array([0.9, 0.6, 0.3, 0.55, np.nan])  # the last pair failed
    report = verification_report(scores, same, np.full(5, 10), [10], 0.5, mapping)
    expected = calibration_metrics(mapping(scores[:4]), same[:4])
    assert report["calibration"]["brier"] == pytest.approx(expected["brier"])
    assert report["calibration"]["ece"] == pytest.approx(expected["ece"])
    shown = format_report(report | {"no_face_count": 0, "n_images": 8, "seen_folds_included": []})
    assert "Brier / ECE" in shown
    assert "calibration" not in verification_report(scores, same, np.full(5, 10), [10], 0.5)
    paths = write_plots(scores[:4], same[:4], 0.5, tmp_path, "toy", mapping(scores[:4]))
    assert [p.name for p in paths] == ["roc.png", "scores.png", "reliability.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
