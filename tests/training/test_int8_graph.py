"""The float graph's rewrites before quantisation: the same function, in the operations onnxruntime's
int8 kernels run fast."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from facever.model.card import ONNX_FILE
from facever.training.int8_graph import (
    fold_normalisation,
    rewrite_for_int8,
    shortcut_pools_as_convolutions,
    space_to_depth_stem,
)

SHIPPED_FLOAT = Path(__file__).resolve().parents[2] / "model" / "float" / ONNX_FILE


def embeddings(model: onnx.ModelProto | Path, pixels: np.ndarray) -> np.ndarray:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: pixels})[0]


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(2).uniform(0, 255, (3, 3, 150, 150)).astype(np.float32)


@pytest.mark.parametrize("rewrite", [fold_normalisation, space_to_depth_stem, shortcut_pools_as_convolutions])
def test_each_rewrite_alone_keeps_the_embeddings(rewrite, pixels):
    model = onnx.load(SHIPPED_FLOAT)
    assert rewrite(model)
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(model, strict_mode=True))
    np.testing.assert_allclose(embeddings(model, pixels), embeddings(SHIPPED_FLOAT, pixels), atol=1e-5)
    assert not rewrite(model)  # nothing left to rewrite


def test_all_rewrites_leave_only_fast_operations(pixels):
    model = onnx.load(SHIPPED_FLOAT)
    assert rewrite_for_int8(model) == [
        "fold_normalisation",
        "space_to_depth_stem",
        "shortcut_pools_as_convolutions",
    ]
    assert "AveragePool" not in [node.op_type for node in model.graph.node]
    # the pixels go straight into the stem: no normalising Sub and Div before it
    pixels_name = model.graph.input[0].name
    assert sorted(n.op_type for n in model.graph.node if pixels_name in n.input) == ["Shape", "SpaceToDepth"]
    stem = next(node for node in model.graph.node if node.op_type == "Conv")
    assert stem.input[0].endswith("/space_to_depth")
    assert {a.name: list(a.ints) for a in stem.attribute if a.name in ("strides", "kernel_shape")} == {
        "strides": [1, 1],
        "kernel_shape": [4, 4],
    }
    # the channel zero-padding after each pool went with it; the spatial padding of the last stage stays
    pads = [node for node in model.graph.node if node.op_type == "Pad"]
    assert len(pads) == 2
    np.testing.assert_allclose(embeddings(model, pixels), embeddings(SHIPPED_FLOAT, pixels), atol=1e-5)
