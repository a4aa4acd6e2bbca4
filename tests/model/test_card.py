"""The model card is typed: a card missing a key that code relies on does not load, and the shipped cards
load and save back unchanged."""

import json
import shutil
from pathlib import Path

import pytest

from facever.model.card import CARD_FILE, ModelCard

MODELS = Path(__file__).resolve().parents[2] / "model"


@pytest.mark.parametrize("name", ["default", "float"])
def test_the_shipped_cards_load_and_save_back_byte_for_byte(name, tmp_path):
    shipped = MODELS / name / CARD_FILE
    card = ModelCard.load(shipped.parent)
    assert 10 in card.data.test_folds and card.data.calibration_folds == card.calibration.folds == [9]
    # the folds that chose the detector's settings and the model variant are named, and fold 10 is none
    assert card.data.selection_folds == [1, 2, 3, 4] and set(card.data.selection_folds) < set(
        card.data.test_folds
    )
    card.save(tmp_path)
    assert (tmp_path / CARD_FILE).read_text() == shipped.read_text()


def _card_without(tmp_path: Path, *path: str, rename: str | None = None) -> Path:
    shutil.copy(MODELS / "default" / CARD_FILE, tmp_path / CARD_FILE)
    card = json.loads((tmp_path / CARD_FILE).read_text())
    section = card
    for key in path[:-1]:
        section = section[key]
    value = section.pop(path[-1])
    if rename:
        section[rename] = value
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    return tmp_path


@pytest.mark.parametrize(
    "path",
    [
        ("data", "test_folds"),
        ("data", "train_folds"),
        ("data", "calibration_folds"),
        ("data",),
        ("calibration", "folds"),
        ("training",),
        ("training", "steps"),
    ],
)
def test_a_card_missing_a_key_is_refused(path, tmp_path):
    with pytest.raises(ValueError, match=r"not a valid model card[\s\S]*" + path[-1]):
        ModelCard.load(_card_without(tmp_path, *path))


def test_a_renamed_fold_key_is_refused_not_read_as_empty(tmp_path):
    # read with .get("train_folds", []) this card would let the evaluation score the folds it trained on
    model_dir = _card_without(tmp_path, "data", "train_folds", rename="training_folds")
    with pytest.raises(ValueError, match=r"train_folds[\s\S]*Field required[\s\S]*training_folds"):
        ModelCard.load(model_dir)


def test_a_card_without_calibration_loads_as_not_calibrated(tmp_path):
    # the provisional card of a release, written before its thresholds are calibrated
    card = ModelCard.load(_card_without(tmp_path, "calibration"))
    assert card.calibration is None
