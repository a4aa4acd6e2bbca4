"""The quantised graph's stem, rewritten into operations onnxruntime's int8 kernels run faster, with
exactly the same answers.

dlib's network opens with a 7x7 convolution of stride 2 over the three colour channels. onnxruntime's
int8 convolution fills its vectors along the input channels, so on 3 of them it wastes most of each:
the stem took a quarter of the network's time (0.74 of 3.0 ms for a face and its mirror image, one
core). ``space_to_depth_stem`` moves each 2x2 block of the quantised input into 12 channels
(SpaceToDepth, on the uint8 values) and gives the stem a 4x4 kernel of stride 1 over them: each int8
weight moves to the channel and offset its pixel landed on, the added taps are 0. The integer sums,
and so every output, are the same (tests/training/test_int8_graph.py); the stem runs in ~60 % of the
time.

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
    height, width = _shape(model, pixels.input[0])[2:]
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
    values[weights_dq.input[0]].CopyFrom(numpy_helper.from_array(stacked, weights_dq.input[0]))
    # The exporter recorded the old shapes; shape inference would check against them.
    for value in list(graph.value_info):
        if value.name in (weights_dq.input[0], weights_dq.output[0]):
            graph.value_info.remove(value)
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


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _shape(model: onnx.ModelProto, tensor: str) -> list[int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    for value in (*inferred.graph.value_info, *inferred.graph.input):
        if value.name == tensor:
            return [d.dim_value for d in value.type.tensor_type.shape.dim]
    return [0, 0, 0, 0]
