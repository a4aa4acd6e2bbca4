"""The views a face is embedded from (model/framing.py): the dlib-5 chip is the chip dlib itself cuts from
its shape predictor's points on the mapped box, turned faces fall back to the landmarks chip, and a
face's embedding is the normalised sum of its views' unit embeddings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facever.model.card import AlignmentSpec, Dlib5Framing, ModelCard
from facever.model.detection import DetectedFace
from facever.model.embedding import normalise
from facever.model.face_choice import choose_face
from facever.model.framing import Framer, dlib_box, lit, middle_luminance, yaw
from facever.model.images import read_image
from facever.model.runtime import FacePipeline
from facever.training.networks.dlib_shape_predictor import read_shape_predictor

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "model" / "float"
BOX_MAP = [0.0538, 0.0841, 1.1306, 0.8562]


@pytest.fixture(scope="module")
def two_view_model(tmp_path_factory) -> Path:
    """The shipped network with a card asking for both views, and the predictor's arrays beside it."""
    folder = tmp_path_factory.mktemp("two-views")
    (folder / "facever.onnx").symlink_to(DEFAULT_MODEL / "facever.onnx")
    card = ModelCard.load(DEFAULT_MODEL)
    card.alignment = card.alignment.model_copy(
        update={
            "views": ["landmarks", "dlib-5"],
            "dlib_5": Dlib5Framing(box_map=BOX_MAP, max_yaw=0.45),
            "equalise_dark_chips_below": 0.0,  # dlib's own chip, untouched, for the parity test
        }
    )
    card.save(folder)
    read_shape_predictor().save(folder / "shape_predictor_5.npz")
    return folder


@pytest.fixture(scope="module")
def pipeline(two_view_model) -> FacePipeline:
    return FacePipeline(two_view_model, "cpu", 1, detection_device="cpu")


@pytest.fixture(scope="module")
def photos(lfw_image) -> list[np.ndarray]:
    return [
        read_image(lfw_image(key))
        for key in ("Aaron_Peirsol/Aaron_Peirsol_0001", "Abdullah_Gul/Abdullah_Gul_0001", "Zico/Zico_0001")
    ]


def test_a_face_has_one_chip_per_view_landmarks_first(pipeline, photos):
    for rgb in photos:
        face = choose_face(pipeline.detect(rgb))
        views = pipeline.views(rgb, face)
        assert views.shape == (2, 150, 150, 3) and views.dtype == np.uint8
        assert np.array_equal(views[0], pipeline.framer.landmarks_chip(rgb, face))
        assert np.array_equal(pipeline.crop(rgb, face), views[0])
        assert not np.array_equal(views[0], views[1])  # two framings of the same face


def test_the_dlib_5_chip_is_the_chip_dlib_cuts_on_the_mapped_box(pipeline, photos):
    dlib = pytest.importorskip("dlib")
    from facever.training.networks.dlib_format import dlib_models_dir

    predictor = dlib.shape_predictor(str(dlib_models_dir() / "shape_predictor_5_face_landmarks.dat"))
    for rgb in photos:
        face = choose_face(pipeline.detect(rgb))
        shape = predictor(rgb, dlib.rectangle(*dlib_box(face.box, BOX_MAP)))
        theirs = np.asarray(dlib.get_face_chip(rgb, shape, size=150, padding=0.25)).astype(int)
        ours = pipeline.views(rgb, face)[1].astype(int)
        difference = np.abs(ours - theirs)
        assert difference.max() <= 1 and (difference == 0).mean() > 0.99, (
            difference.max(),
            difference.mean(),
        )


def test_a_turned_face_uses_the_landmarks_chip_in_the_dlib_5_slot(pipeline, photos):
    rgb = photos[0]
    face = choose_face(pipeline.detect(rgb))
    left, right = face.landmarks[0], face.landmarks[1]
    turned = face.landmarks.copy()
    turned[2] = right + 0.1 * (right - left)  # the nose beyond the far eye: a profile
    profile = DetectedFace(face.box, turned, face.score)
    assert yaw(turned) > 0.45 >= yaw(face.landmarks)
    views = pipeline.views(rgb, profile)
    assert np.array_equal(views[1], views[0])
    assert not np.array_equal(pipeline.views(rgb, face)[1], pipeline.views(rgb, face)[0])


def test_the_embedding_is_the_normalised_sum_of_the_views_unit_embeddings(pipeline, photos):
    stacked = np.stack([pipeline.views(rgb, choose_face(pipeline.detect(rgb))) for rgb in photos])
    each = pipeline.embed(stacked.reshape(-1, 150, 150, 3)).reshape(len(photos), 2, -1)
    expected = normalise(each.sum(1))
    got = pipeline.embed(stacked)
    assert got.shape == (len(photos), 128)
    assert np.allclose(got, expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    single = pipeline.embed(stacked[:, 0])
    assert not np.allclose(got, single, atol=1e-3)  # both views count


def test_embed_chosen_embeds_the_views(pipeline, photos):
    embedding, face = pipeline.embed_chosen(photos[1])
    assert face is not None
    assert np.allclose(embedding, pipeline.embed(pipeline.views(photos[1], face)[None])[0], atol=1e-6)


def test_yaw_is_zero_for_a_symmetric_face_and_half_with_the_nose_under_an_eye():
    frontal = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)
    assert yaw(frontal) == pytest.approx(0.0)
    under_an_eye = frontal.copy()
    under_an_eye[2] = [70, 60]
    assert yaw(under_an_eye) == pytest.approx(0.5)


def test_dlib_box_moves_and_scales_the_box_in_its_own_units():
    assert dlib_box((100, 100, 200, 300), [0.1, -0.05, 1.2, 0.5]) == (100, 140, 220, 240)


def test_a_card_asking_for_dlib_5_without_its_section_is_refused():
    with pytest.raises(ValueError, match="dlib_5"):
        AlignmentSpec(template=[[0.0, 0.0]] * 5, views=["landmarks", "dlib-5"])
    with pytest.raises(ValueError, match="empty"):
        AlignmentSpec(template=[[0.0, 0.0]] * 5, views=[])


def test_a_model_directory_without_the_predictor_file_is_refused(two_view_model, tmp_path):
    for name in ("facever.onnx", "model_card.json"):
        shutil.copy(two_view_model / name, tmp_path / name)
    with pytest.raises(FileNotFoundError):
        Framer(ModelCard.load(tmp_path), tmp_path)


def _darkened(rgb: np.ndarray, factor: float) -> np.ndarray:
    return np.round(rgb.astype(np.float64) * factor).astype(np.uint8)


def test_middle_luminance_looks_at_the_face_not_the_black_surround():
    chip = np.zeros((150, 150, 3), np.uint8)
    chip[25:125, 25:125] = (200, 100, 50)
    assert middle_luminance(chip) == pytest.approx(0.299 * 200 + 0.587 * 100 + 0.114 * 50)


def test_only_chips_darker_than_the_cards_level_are_equalised(photos):
    bright = photos[0][:150, :150]
    dark = _darkened(bright, 0.2)
    assert middle_luminance(dark) < 40 < middle_luminance(bright)
    assert lit(bright, 40.0) is bright
    assert lit(dark, 0.0) is dark  # 0: never
    equalised = lit(dark, 40.0)
    assert equalised.shape == dark.shape and equalised.dtype == np.uint8
    assert middle_luminance(equalised) > 2 * middle_luminance(dark)
    spread = lambda chip: np.ptp(chip.reshape(-1, 3) @ np.array([0.299, 0.587, 0.114]))  # noqa: E731
    assert spread(equalised) > 2 * spread(dark)


def test_the_runtime_embeds_a_dark_face_from_its_equalised_chip(two_view_model, photos, tmp_path):
    for name in ("facever.onnx", "shape_predictor_5.npz"):
        (tmp_path / name).symlink_to(two_view_model / name)
    card = ModelCard.load(two_view_model)
    card.alignment = card.alignment.model_copy(update={"equalise_dark_chips_below": 70.0})
    card.save(tmp_path)
    plain = FacePipeline(two_view_model, "cpu", 1, detection_device="cpu")
    lifting = FacePipeline(tmp_path, "cpu", 1, detection_device="cpu")
    dark = _darkened(photos[1], 0.25)
    face = choose_face(plain.detect(dark))
    assert middle_luminance(plain.crop(dark, face)) < 70
    views = lifting.views(dark, face)
    assert all(middle_luminance(view) >= 70 for view in views)
    assert np.array_equal(lifting.crop(dark, face), views[0])
    assert np.array_equal(views[0], lit(plain.views(dark, face)[0], 70.0))
    # a photo lit as usual: the same chips either way
    bright_face = choose_face(plain.detect(photos[1]))
    assert np.array_equal(lifting.views(photos[1], bright_face), plain.views(photos[1], bright_face))
