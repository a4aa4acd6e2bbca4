"""facever quantize: an int8 copy of the shipped model, calibrated on fold-9 people only, that embeds
faces as the float model does and carries its own name and thresholds."""

from pathlib import Path

import numpy as np
import pytest

from facever.model.card import ONNX_FILE
from facever.model.images import read_image
from facever.model.runtime import FacePipeline
from facever.training.quantize import quantize

pytestmark = pytest.mark.slow


def test_the_int8_copy_embeds_like_the_float_model(fold9_lfw, tmp_path):
    source = Path(__file__).resolve().parents[2] / "model" / "float"
    card = quantize(source, tmp_path / "int8", fold9_lfw)

    float_card = FacePipeline(source, device="cpu").card
    assert card.name == f"{float_card.name}-int8" and card.version == float_card.version
    assert card.flip_test_time == float_card.flip_test_time
    assert card.training.quantization.calibration_folds == [9]
    assert "SpaceToDepth" in card.training.quantization.method  # training/int8_graph.py
    assert "centre taps" in card.training.quantization.method
    assert "within -64..64" in card.training.quantization.method  # the same sums on every CPU
    assert card.calibration.folds == [9] and card.calibration.images > 0
    points = card.thresholds
    assert points.far_1e_2 <= points.far_1e_3 <= points.far_1e_4
    assert card.identify_threshold == max(points.far_1e_4, points.best_accuracy)
    assert (tmp_path / "int8" / ONNX_FILE).stat().st_size < (source / ONNX_FILE).stat().st_size / 2

    float_model, int8_model = (
        FacePipeline(source, device="cpu"),
        FacePipeline(tmp_path / "int8", device="cpu"),
    )
    chips = []
    for person in sorted((fold9_lfw / "images").iterdir())[:4]:
        image = read_image(sorted(person.glob("*.jpg"))[0])
        chips.append(float_model.crop(image, float_model.detect(image)[0]))
    cosines = (float_model.embed(np.stack(chips)) * int8_model.embed(np.stack(chips))).sum(1)
    assert cosines.min() > 0.995, cosines


def test_a_mirrored_int8_copy_is_named_apart_and_averages_a_face_with_its_mirror_image(fold9_lfw, tmp_path):
    source = Path(__file__).resolve().parents[2] / "model" / "float"
    card = quantize(source, tmp_path / "mirrored", fold9_lfw, flip_test_time=True, version="2.0.0")

    assert card.name == "facever-dlib-int8-mirrored" and card.flip_test_time and card.version == "2.0.0"
    assert card.calibration.folds == [9]
    mirrored = FacePipeline(tmp_path / "mirrored", device="cpu")
    image = read_image(sorted(sorted((fold9_lfw / "images").iterdir())[0].glob("*.jpg"))[0])
    chip = mirrored.crop(image, mirrored.detect(image)[0])
    # the same network on the chip and on its mirror image, summed and normalised
    session = mirrored.embedder.session
    name = session.get_inputs()[0].name
    pair = np.stack([chip, chip[:, ::-1]]).transpose(0, 3, 1, 2).astype(np.float32)
    both = session.run(None, {name: pair})[0].sum(0)
    expected = both / np.linalg.norm(both)
    np.testing.assert_allclose(mirrored.embed(chip[None])[0], expected, atol=1e-5)
