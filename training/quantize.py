"""An int8 copy of an exported model: onnxruntime's static quantisation, then the thresholds calibrated
again for the int8 network exactly as for the float one.

Weights become int8 per output channel, held to 7 bits (-64..64; see quantise_static), activations uint8
(QDQ format, which onnxruntime runs with int8 kernels, VNNI where the CPU has it); then the stem and the
convolutions over a single pixel are rewritten into operations those kernels run faster, with the same
answers (training/int8_graph.py). The activation ranges are measured on aligned chips of the calibration
folds' people (LFW fold 9 for the shipped model), never on a test fold. The int8 network is a different
model: its card has its own name (``<name>-int8``, ``<name>-int8-mirrored`` when it also embeds each
face's mirror image), so its templates are never compared with the float model's. The shipped default
model is model/float's copy, mirrored (bench/model_choice.py).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from facever.model.card import ONNX_FILE, ModelCard, TrainingRecord
from facever.model.images import ImageError, read_image
from facever.model.runtime import FacePipeline
from facever.training.evaluation.lfw import LFW
from facever.training.int8_graph import centre_taps_on_single_pixels, space_to_depth_stem
from facever.training.release import calibrate_card, git_commit

CHIPS = 200  # calibration chips for the activation ranges: ranges settle well before this


class _Chips(CalibrationDataReader):
    def __init__(self, input_name: str, chips: list[np.ndarray]):
        self.feeds = iter({input_name: chip[None]} for chip in chips)

    def get_next(self) -> dict | None:
        return next(self.feeds, None)


def quantise_static(float_path: Path, int8_path: Path, chips: CalibrationDataReader) -> None:
    """onnxruntime's static quantisation as facever ships it: QDQ, int8 weights per output channel,
    uint8 activations whose ranges ``chips`` measure.

    The weights are held within -64..64 (``reduce_range``): on a CPU without VNNI (AVX2 only: AMD before
    Zen 4, Intel Xeons before Cascade Lake) onnxruntime multiplies uint8 by int8 with VPMADDUBSW, which
    adds two products in a saturating 16-bit sum; 255 * 127 * 2 overflows it, 255 * 64 * 2 does not. With
    full 8-bit weights the network's sums were clipped there, and its embeddings differed from a VNNI
    machine's (the README's verify pair 0.9427 on an AMD EPYC Zen 3 against 0.9481); with 7 bits every
    CPU computes the same integer sums (BENCHMARKS.md, "The same embeddings on every CPU")."""
    quantize_static(
        str(float_path),
        str(int8_path),
        chips,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        reduce_range=True,
    )


def calibration_chips(
    pipeline: FacePipeline, lfw: LFW, folds: list[int], count: int = CHIPS
) -> list[np.ndarray]:
    """Network inputs (C, S, S float32) of up to ``count`` photos of the folds' people, spread evenly."""
    people = lfw.identities()
    fold_people = lfw.fold_identities()
    keys = [k for fold in folds for p in sorted(fold_people[fold]) for k in people.get(p, [])]
    step = max(1, len(keys) // count)
    chips = []
    for key in keys[::step][:count]:
        image = read_image(lfw.path(key))
        try:
            face = pipeline.choose(image)
        except ImageError:
            continue  # the service would refuse the photo: nothing to calibrate on
        chip = pipeline.crop(image, face)
        chips.append(
            chip.transpose(2, 0, 1).astype(np.float32) if chip.ndim == 3 else chip[None].astype(np.float32)
        )
    return chips


def quantize(
    model_dir: Path,
    out_dir: Path,
    lfw_root: Path,
    cache_dir: Path | None = None,
    flip_test_time: bool | None = None,
    version: str | None = None,
) -> ModelCard:
    """The int8 copy of ``model_dir`` in ``out_dir``, its card calibrated; ``flip_test_time`` (None: as the
    float model's card) sets whether each face is also embedded mirrored, ``version`` (None: the float
    model's) the copy's version: a copy that embeds differently from an earlier one needs a new version,
    or the service would compare templates of the two."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    pipeline = FacePipeline(model_dir, device="cpu")
    card = pipeline.card
    if card.input.channels != 3:
        raise ValueError("quantisation is set up for the 3-channel networks (dlib-resnet)")
    lfw = LFW(lfw_root)
    folds = (card.calibration.folds if card.calibration else None) or card.data.calibration_folds
    chips = calibration_chips(pipeline, lfw, folds)
    input_name = pipeline.embedder.session.get_inputs()[0].name

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        # onnxruntime's symbolic shape inference trips on the exporter's graph; ONNX's own is enough here
        quant_pre_process(str(model_dir / ONNX_FILE), str(prepared), skip_symbolic_shape=True)
        quantise_static(prepared, out_dir / ONNX_FILE, _Chips(input_name, chips))
    quantised = onnx.load(out_dir / ONNX_FILE)
    stem_rewritten = space_to_depth_stem(quantised)
    single_pixel_convolutions = centre_taps_on_single_pixels(quantised)
    onnx.save(quantised, out_dir / ONNX_FILE)

    int8 = card.model_copy(deep=True)
    mirrored = card.flip_test_time if flip_test_time is None else flip_test_time
    # Each variant its own name: templates are only ever compared with their own model's.
    int8.name = f"{card.name}-int8" + ("-mirrored" if mirrored and not card.flip_test_time else "")
    int8.version = version or card.version
    int8.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    int8.metrics = {}
    int8.flip_test_time = mirrored
    int8.git_commit = git_commit()
    int8.training = TrainingRecord.model_validate(
        {
            **card.training.model_dump(mode="json", by_alias=True),
            "quantization": {
                "from": f"{card.name} {card.version}",
                "method": "onnxruntime static quantisation, QDQ: int8 weights per output channel within "
                "-64..64 (7 bits), uint8 activations"
                + (
                    "; the stem as SpaceToDepth + a stride-1 convolution, the same integer sums"
                    if stem_rewritten
                    else ""
                )
                + (
                    "; convolutions over a single pixel reduced to their centre taps, the same sums"
                    if single_pixel_convolutions
                    else ""
                ),
                "calibration_chips": len(chips),
                "calibration_folds": folds,
            },
        }
    )
    int8.save(out_dir)
    return calibrate_card(out_dir, lfw, folds, cache_dir)
