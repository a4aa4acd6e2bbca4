"""The shipped recipe end to end on a few people: dlib's ResNet imported by the trainer (no training
steps), exported to ONNX with a calibrated card, and served by the runtime that the service uses."""

from pathlib import Path

import numpy as np
import pytest
import torch

from facever.model.alignment import DLIB_CHIP_150
from facever.model.images import read_image
from facever.model.runtime import FacePipeline
from facever.training.config import load_config
from facever.training.networks.dlib_resnet import DlibResNet
from facever.training.release import release
from facever.training.train import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("recipe", ["shipped", "two-views"])
def test_the_imported_network_exports_with_a_calibrated_card(fold9_lfw, tmp_path, recipe):
    config = load_config(
        Path(__file__).resolve().parents[2] / "training" / "configs" / f"{recipe}.yaml",
        {"data": {"lfw": str(fold9_lfw), "cache_dir": str(tmp_path / "cache")}},
    )
    checkpoint = train(config, tmp_path / "run")
    card = release(checkpoint, tmp_path / "model")

    assert card.input.size == 150 and card.input.channels == 3
    assert np.allclose(card.alignment.template, DLIB_CHIP_150, atol=1e-3)
    if recipe == "two-views":  # the predictor's arrays ship beside the network: serving needs no dlib
        assert card.alignment.views == ["landmarks", "dlib-5"] and card.alignment.dlib_5 is not None
        assert (tmp_path / "model" / card.alignment.dlib_5.shape_predictor).is_file()
        assert card.data.test_folds == [10]
    else:
        assert card.alignment.views == ["landmarks"] and card.alignment.dlib_5 is None
        assert not list((tmp_path / "model").glob("*.npz"))
    assert card.data.train_folds == [] and card.data.train.model_dump() == {"people": 0, "images": 0}
    assert card.data.calibration_folds == [9] and 10 in card.data.test_folds
    assert "public domain" in card.training.initial_weights
    points = card.thresholds
    assert points.far_1e_2 <= points.far_1e_3 <= points.far_1e_4
    # identify is never looser than verify (on these few people FAR 1e-4 is just the top impostor score)
    assert card.threshold == points.best_accuracy
    assert card.identify_threshold == max(points.far_1e_4, points.best_accuracy) >= card.threshold

    # the runtime embeds with the exported file exactly what dlib's network computes on the same chip
    pipeline = FacePipeline(tmp_path / "model", device="cpu")
    person = sorted((fold9_lfw / "images").iterdir())[0]
    image = read_image(sorted(person.glob("*.jpg"))[0])
    chip = pipeline.crop(image, pipeline.detect(image)[0])
    assert chip.shape == (150, 150, 3)
    with torch.no_grad():
        expected = DlibResNet.from_dlib()(torch.from_numpy(chip.transpose(2, 0, 1)[None].astype(np.float32)))
    assert float(pipeline.embed(chip[None])[0] @ expected[0].numpy()) > 0.9999
