"""The quantised graph rewritten into operations onnxruntime's int8 kernels run faster, with exactly
the same answers: the stem, and convolutions over a single pixel.

dlib's network opens with a 7x7 convolution of stride 2 over the three colour channels. onnxruntime's
int8 convolution fills its vectors along the input channels, so on 3 of them it wastes most of each:
the stem took a quarter of the network's time (0.74 of 3.0 ms for a face and its mirror image, one
core). ``space_to_depth_stem`` moves each 2x2 block of the quantised input into 12 channels
(SpaceToDepth, on the uint8 values) and gives the stem a 4x4 kernel of stride 1 over them: each int8
weight moves to the channel and offset its pixel landed on, the added taps are 0. The integer sums,
and so every output, are the same (tests/training/test_int8_graph.py); the stem runs in ~60 % of the
time.

dlib's last residual block convolves a 1x1 map with a 3x3 kernel padded by one: eight of its nine taps
see only padding, which in the int8 graph is the input's zero point and adds exactly 0 to every sum.
``centre_taps_on_single_pixels`` keeps the centre tap alone (a 1x1 convolution): the same sums in a
ninth of the work (~0.05 ms of the network's ~3.7 ms, one core).

Rewriting the float graph before quantising was measured too (the stem, plus the input normalisation
folded into it and the shortcuts' average pools as convolutions: 2.6 instead of 3.0 ms), but the
int8 network quantised from it is a different one (another draw of the quantisation's rounding;
BENCHMARKS.md, "The networks faster").
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def space_to_depth_stem(model: onnx.ModelProto) -> bool:
    """Rewrite the first convolution of a QDQ graph where it is QuantizeLinear -> DequantizeLinear ->
    Conv (stride 2, no padding, no groups or dilation, at most 4 input channels of even height and
    width) with symmetric int8 weights per output channel; returns whether it did."""
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    values = {tensor.name: tensor for tensor in graph.initializer}
    conv = next((node for node in graph.node if node.op_type == "Conv"), None)
    if conv is None:
        return False
    pixels, weights_dq = producers.get(conv.input[0]), producers.get(conv.input[1])
    if (
        pixels is None
        or pixels.op_type != "DequantizeLinear"
        or getattr(producers.get(pixels.input[0]), "op_type", None) != "QuantizeLinear"
        or weights_dq is None
        or weights_dq.op_type != "DequantizeLinear"
        or weights_dq.input[0] not in values
        or _attributes(weights_dq).get("axis", 1) != 0
        or len(weights_dq.input) < 3
        or weights_dq.input[2] not in values
        or numpy_helper.to_array(values[weights_dq.input[2]]).any()
    ):
        return False
    attributes = _attributes(conv)
    if (
        list(attributes.get("strides", [])) != [2, 2]
        or any(attributes.get("pads", []))
        or attributes.get("group", 1) != 1
        or any(d != 1 for d in attributes.get("dilations", []))
        or attributes.get("auto_pad", b"NOTSET") != b"NOTSET"
    ):
        return False
    weights = numpy_helper.to_array(values[weights_dq.input[0]])
    height, width = _spatial_shapes(model).get(pixels.input[0], [0, 0])
    if weights.shape[1] > 4 or not height or height % 2 or not width or width % 2:
        return False

    outputs, channels, rows, columns = weights.shape
    # SpaceToDepth's channel (dy * 2 + dx) * channels + c holds pixel (2y + dy, 2x + dx) of channel c.
    stacked = np.zeros((outputs, 4 * channels, (rows + 1) // 2, (columns + 1) // 2), weights.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            taps = weights[:, :, dy::2, dx::2]
            first = (dy * 2 + dx) * channels
            stacked[:, first : first + channels, : taps.shape[2], : taps.shape[3]] = taps
    _replace_weights(graph, values, weights_dq, stacked)
    moved = f"{pixels.input[0]}/space_to_depth"
    graph.node.insert(
        list(graph.node).index(pixels),
        onnx.helper.make_node("SpaceToDepth", [pixels.input[0]], [moved], blocksize=2),
    )
    pixels.input[0] = moved
    for attribute in conv.attribute:
        if attribute.name == "strides":
            attribute.ints[:] = [1, 1]
        elif attribute.name == "kernel_shape":
            attribute.ints[:] = list(stacked.shape[2:])
    return True


def centre_taps_on_single_pixels(model: onnx.ModelProto) -> int:
    """Every convolution of a QDQ graph over a 1x1 input (stride 1, an odd kernel padded by at least half
    of it on every side, int8 weights as an initializer) reduced to its centre tap; returns how many."""
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    values = {tensor.name: tensor for tensor in graph.initializer}
    spatial = _spatial_shapes(model)
    rewritten = 0
    for conv in [node for node in graph.node if node.op_type == "Conv"]:
        weights_dq = producers.get(conv.input[1])
        if (
            weights_dq is None
            or weights_dq.op_type != "DequantizeLinear"
            or weights_dq.input[0] not in values
        ):
            continue
        weights = numpy_helper.to_array(values[weights_dq.input[0]])
        attributes = _attributes(conv)
        rows, columns = weights.shape[2:]
        if (
            rows != columns
            or rows % 2 == 0
            or rows == 1
            or any(stride != 1 for stride in attributes.get("strides", []))
            or any(pad < rows // 2 for pad in attributes.get("pads", [0]))
            or attributes.get("auto_pad", b"NOTSET") != b"NOTSET"
            or any(d != 1 for d in attributes.get("dilations", []))
            or spatial.get(conv.input[0]) != [1, 1]
        ):
            continue
        middle = rows // 2
        centre = np.ascontiguousarray(weights[:, :, middle : middle + 1, middle : middle + 1])
        _replace_weights(graph, values, weights_dq, centre)
        for attribute in conv.attribute:
            if attribute.name == "kernel_shape":
                attribute.ints[:] = [1, 1]
            elif attribute.name == "pads":
                attribute.ints[:] = [0] * len(attribute.ints)
        rewritten += 1
    return rewritten


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _replace_weights(
    graph: onnx.GraphProto, values: dict, weights_dq: onnx.NodeProto, weights: np.ndarray
) -> None:
    """The int8 weights behind ``weights_dq`` replaced by ``weights`` (another shape)."""
    values[weights_dq.input[0]].CopyFrom(numpy_helper.from_array(weights, weights_dq.input[0]))
    # The exporter recorded the old shapes; shape inference would check against them.
    for value in list(graph.value_info):
        if value.name in (weights_dq.input[0], weights_dq.output[0]):
            graph.value_info.remove(value)


def _spatial_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Each tensor's inferred (height, width): its dimensions after batch and channels."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    return {
        value.name: [d.dim_value for d in value.type.tensor_type.shape.dim][2:]
        for value in (*inferred.value_info, *inferred.input)
    }
