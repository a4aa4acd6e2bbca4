"""Export a trained network to ONNX (opset 18, dynamic batch axis) with PyTorch's dynamo exporter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from facever.model.card import ONNX_FILE

if TYPE_CHECKING:
    from facever.training.networks.dlib_resnet import DlibResNet
    from facever.training.networks.facever_small import EmbeddingNet

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"


def export_onnx(model: EmbeddingNet | DlibResNet, out_dir: str | Path) -> Path:
    """Write ``facever.onnx``: input "image" (N, 1, S, S) raw pixels -> "embedding" (N, D) unit vectors."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ONNX_FILE
    # Module.to takes memory_format (torch parses it with its other arguments); torch's overloads omit it.
    model = model.eval().cpu().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    example = torch.full((2, getattr(model, "input_channels", 1), model.input_size, model.input_size), 128.0)
    for chatty in ("onnxscript", "onnx_ir"):  # the exporter's passes log every step at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
        opset_version=OPSET,
        dynamo=True,
        external_data=False,  # one self-contained file
        verbose=False,
    )
    return path
