"""The quantised graph's rewrites (training/int8_graph.py): exactly the same answers."""

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader

from facever.training.int8_graph import centre_taps_on_single_pixels, space_to_depth_stem
from facever.training.quantize import quantise_static


class _Pixels(CalibrationDataReader):
    def __init__(self, batches):
        self.batches = iter({"pixels": batch} for batch in batches)

    def get_next(self):
        return next(self.batches, None)


def quantised_stem_network(tmp_path, side: int = 30, stride: int = 2, kernel: int = 7):
    """A dlib-like opening (a 7x7/2 convolution over RGB, ReLU, a 3x3 convolution), quantised."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.1, (8, 3, kernel, kernel)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.1, (4, 8, 3, 3)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["pixels", "w1", "b1"], ["stem"], kernel_shape=[kernel] * 2, strides=[stride] * 2
        ),
        helper.make_node("Relu", ["stem"], ["relu"]),
        helper.make_node("Conv", ["relu", "w2"], ["out"], kernel_shape=[3, 3]),
    ]
    calibration = [rng.uniform(0, 1, (1, 3, side, side)).astype(np.float32) for _ in range(4)]
    return quantised(tmp_path, nodes, weights, [3, side, side], calibration)


def quantised(tmp_path, nodes, weights, shape: list[int], calibration: list[np.ndarray]) -> onnx.ModelProto:
    """The graph of ``nodes`` (input "pixels" of (n, *shape), output "out") quantised as facever
    quantize quantises: QDQ, int8 weights per output channel within -64..64, uint8 activations."""
    graph = helper.make_graph(
        nodes,
        "network",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", *shape])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        weights,
    )
    float_path, int8_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), float_path)
    quantise_static(float_path, int8_path, _Pixels(calibration))
    return onnx.load(int8_path)


def answers(model: onnx.ModelProto, pixels: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": pixels})[0]


def test_the_rewritten_stem_gives_exactly_the_same_answers(tmp_path):
    quantised = quantised_stem_network(tmp_path)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(quantised)
    assert space_to_depth_stem(rewritten)

    stem = next(node for node in rewritten.graph.node if node.op_type == "Conv")
    attributes = {a.name: list(a.ints) for a in stem.attribute if a.name in ("strides", "kernel_shape")}
    assert attributes == {"strides": [1, 1], "kernel_shape": [4, 4]}
    assert "SpaceToDepth" in [node.op_type for node in rewritten.graph.node]
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(rewritten, strict_mode=True))

    pixels = np.random.default_rng(1).uniform(0, 1, (3, 3, 30, 30)).astype(np.float32)
    np.testing.assert_array_equal(answers(rewritten, pixels), answers(quantised, pixels))
    assert not space_to_depth_stem(rewritten)  # a stride-1 stem is left as it is


@pytest.mark.parametrize(("side", "stride"), [(31, 2), (30, 1)])
def test_a_stem_it_cannot_rewrite_exactly_is_left_as_it_is(tmp_path, side, stride):
    quantised = quantised_stem_network(tmp_path, side=side, stride=stride, kernel=3)
    before = quantised.SerializeToString()
    assert not space_to_depth_stem(quantised)
    assert quantised.SerializeToString() == before


def quantised_single_pixel_network(tmp_path, side: int):
    """A 3x3 convolution padded by one over a side x side map of 16 channels, ReLU, a 1x1 convolution;
    quantised."""
    rng = np.random.default_rng(2)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.2, (16, 16, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.2, (8, 16, 1, 1)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["pixels", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["relu"]),
        helper.make_node("Conv", ["relu", "w2"], ["out"], kernel_shape=[1, 1]),
    ]
    calibration = [rng.uniform(-1, 1, (1, 16, side, side)).astype(np.float32) for _ in range(4)]
    return quantised(tmp_path, nodes, weights, [16, side, side], calibration)


def test_a_convolution_over_one_pixel_keeps_its_centre_taps_and_its_answers(tmp_path):
    quantised = quantised_single_pixel_network(tmp_path, side=1)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(quantised)
    assert centre_taps_on_single_pixels(rewritten) == 1

    convolutions = [node for node in rewritten.graph.node if node.op_type == "Conv"]
    kernels = [
        next(list(a.ints) for a in node.attribute if a.name == "kernel_shape") for node in convolutions
    ]
    assert kernels == [[1, 1], [1, 1]]
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(rewritten, strict_mode=True))

    pixels = np.random.default_rng(3).uniform(-1, 1, (5, 16, 1, 1)).astype(np.float32)
    np.testing.assert_array_equal(answers(rewritten, pixels), answers(quantised, pixels))
    assert centre_taps_on_single_pixels(rewritten) == 0


def test_a_convolution_over_more_than_one_pixel_is_left_as_it_is(tmp_path):
    quantised = quantised_single_pixel_network(tmp_path, side=2)
    before = quantised.SerializeToString()
    assert centre_taps_on_single_pixels(quantised) == 0
    assert quantised.SerializeToString() == before
