"""bench/proxies.py's proxy files: each detector that frames them writes its own, so two benchmarks that
frame the proxies of the same photos differently never read each other's files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from facever.model.detection import DetectorConfig
from facever.model.images import read_image
from facever.model.runtime import FacePipeline

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
proxies = pytest.importorskip("proxies")

KEY = "Aaron_Peirsol/Aaron_Peirsol_0001"


def test_each_framing_detector_writes_its_own_files(tmp_path, lfw_image):
    paths = {KEY: lfw_image(KEY)}
    first = FacePipeline(REPO / "model" / "default", "cpu", 1, proxies.PROXY_DETECTOR, detection_device="cpu")
    other = FacePipeline(REPO / "model" / "default", "cpu", 1, DetectorConfig(equalize=False), "cpu")
    made = proxies.make_proxies(first, paths, tmp_path)
    made_by_other = proxies.make_proxies(other, paths, tmp_path)
    for kind in ("tight", "relit"):
        assert made[kind][KEY].exists() and made_by_other[kind][KEY].exists()
        assert made[kind][KEY] != made_by_other[kind][KEY]
        assert made[kind][KEY].is_relative_to(tmp_path)
    assert read_image(made["tight"][KEY]).shape == (112, 112, 3)
    # made again by the first detector: its own files, unchanged
    before = read_image(made["tight"][KEY])
    again = proxies.make_proxies(first, paths, tmp_path)
    assert again["tight"][KEY] == made["tight"][KEY]
    assert np.array_equal(read_image(again["tight"][KEY]), before)


def test_lfw_set_names():
    assert proxies.lfw_name([10]) == "LFW fold 10"
    assert proxies.lfw_name([4, 1, 2, 3]) == "LFW folds 1-4"
    assert proxies.lfw_name([3, 1]) == "LFW folds 1, 3"


def test_the_framing_detector_names_the_cache_keys():
    model = REPO / "model" / "default"
    one = FacePipeline(model, "cpu", 1, proxies.PROXY_DETECTOR, detection_device="cpu")
    same = FacePipeline(model, "cpu", 1, DetectorConfig(pnet_first=0.6, crop_fill_mean=False), "cpu")
    other = FacePipeline(model, "cpu", 1, DetectorConfig(), detection_device="cpu")
    assert proxies.framed_by(one) == proxies.framed_by(same) != proxies.framed_by(other)


def test_discordant_pairs_and_mcnemar():
    ours = np.array([True] * 10 + [False] * 4 + [True] * 2 + [False])
    theirs = np.array([True] * 10 + [True] * 4 + [False] * 2 + [False])
    split = proxies.discordant(ours, theirs)
    assert (split["facever_only_right"], split["dlib_only_right"]) == (2, 4)
    # six discordant pairs split 2 / 4: P(X <= 2) for Binomial(6, 1/2) = 22/64, two-sided 44/64
    assert split["mcnemar_p"] == pytest.approx(44 / 64)
    lopsided = proxies.discordant(np.ones(12, bool), np.zeros(12, bool))
    assert lopsided["mcnemar_p"] == pytest.approx(2 / 2**12)
    assert proxies.discordant(ours, ours) == {"facever_only_right": 0, "dlib_only_right": 0, "mcnemar_p": 1.0}


def test_all_vs_all_counts_people_by_the_keys_first_part():
    unit = lambda *v: np.array(v, np.float32) / np.linalg.norm(v)  # noqa: E731
    embeddings = {
        "Ann/Ann_0001": unit(1, 0),
        "Ann/Ann_0002": unit(1, 0.1),
        "Bob/Bob_0001": unit(1, 0.5),
        "Cy/Cy_0001": unit(0, 1),
        "Dee/Dee_0001": np.full(2, np.nan, np.float32),  # no face: left out
    }
    result = proxies.all_vs_all(embeddings, {"loose": 0.85, "strict": 0.99}, "cosine")
    assert (result["photos"], result["genuine_pairs"], result["impostor_pairs"]) == (4, 1, 5)
    # different people: Ann-Bob 0.89 and 0.93, Ann-Cy 0 and 0.10, Bob-Cy 0.45
    assert result["far"] == {"loose": pytest.approx(2 / 5), "strict": 0.0}
    assert result["tar"] == {"loose": 1.0, "strict": 1.0}
    by_distance = proxies.all_vs_all(embeddings, {"0.6": -0.6}, "euclidean")
    assert by_distance["far"]["0.6"] == pytest.approx(2 / 5)
