"""Rewrites of the exported float graph, made before it is quantised: each computes the same function
with operations that onnxruntime's int8 kernels run faster on the CPU (one core, batch of 2: the
network 3.02 -> 2.4 ms; bench/stages.py). Each returns whether it changed the graph.

* ``fold_normalisation``: the input's ``(x - mean) / scale`` folded into the stem convolution's weights
  and bias, so that the network quantises the pixels themselves (0..255).
* ``space_to_depth_stem``: a stride-2 stem over 3 channels (dlib's 7x7/2) as SpaceToDepth(2) and a
  stride-1 convolution over 12: a kernel fed 3 channels wastes most of each vector.
* ``shortcut_pools_as_convolutions``: each 2x2/2 average pool of a shortcut, with the zero channels
  padded on after it, as one 2x2/2 convolution (weights 1/4 on the diagonal, 0 for the added
  channels): onnxruntime's int8 average pool is slow, and the padding ran in float between a
  dequantise and a quantise.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def rewrite_for_int8(model: onnx.ModelProto) -> list[str]:
    """All the rewrites, in the order they need; the names of those that applied."""
    rewrites = (fold_normalisation, space_to_depth_stem, shortcut_pools_as_convolutions)
    return [rewrite.__name__ for rewrite in rewrites if rewrite(model)]


def fold_normalisation(model: onnx.ModelProto) -> bool:
    """input -> Sub(mean per channel) -> Div(scalar) -> Conv without padding, as Conv(W / scale,
    b - sum(W / scale * mean)) on the input: the same sums (padding would see zeros of a different
    meaning, hence none)."""
    graph = model.graph
    values = _initializers(graph)
    inputs = {value.name for value in graph.input}
    sub = next((n for n in graph.node if n.op_type == "Sub" and n.input[0] in inputs), None)
    if sub is None or sub.input[1] not in values:
        return False
    div = _only_user(graph, sub.output[0])
    if div is None or div.op_type != "Div" or values.get(div.input[1], np.empty(2)).size != 1:
        return False
    conv = _only_user(graph, div.output[0])
    if conv is None or conv.op_type != "Conv" or any(_attributes(conv).get("pads", [])):
        return False
    weights, mean = values[conv.input[1]], values[sub.input[1]].reshape(-1)
    if mean.size not in (1, weights.shape[1]):
        return False
    weights = weights / values[div.input[1]].item()
    bias = values[conv.input[2]] if len(conv.input) > 2 else np.zeros(len(weights), weights.dtype)
    shift = (weights.sum((2, 3)) * np.broadcast_to(mean, weights.shape[1])).sum(1)
    _set(graph, conv.input[1], weights.astype(np.float32))
    bias_name = conv.input[2] if len(conv.input) > 2 else f"{conv.name}/bias"
    _set(graph, bias_name, (bias - shift).astype(np.float32))
    conv.input[:] = [sub.input[0], conv.input[1], bias_name]
    graph.node.remove(sub)
    graph.node.remove(div)
    return True


def space_to_depth_stem(model: onnx.ModelProto) -> bool:
    """The first convolution, where it strides 2 without padding over at most 4 channels of an even-sized
    input, as SpaceToDepth(2) and a stride-1 convolution over four times the channels: each weight
    moves to the channel and offset its pixel lands on, and the added taps are zero."""
    graph = model.graph
    conv = next((node for node in graph.node if node.op_type == "Conv"), None)
    values = _initializers(graph)
    if conv is None or conv.input[1] not in values:
        return False
    attributes = _attributes(conv)
    plain = (
        list(attributes.get("strides", [])) == [2, 2]
        and not any(attributes.get("pads", []))
        and attributes.get("group", 1) == 1
        and all(d == 1 for d in attributes.get("dilations", []))
        and attributes.get("auto_pad", b"NOTSET") == b"NOTSET"
    )
    height, width = (_shapes(model).get(conv.input[0]) or [0, 0, 0, 0])[2:]
    weights = values[conv.input[1]]
    if not plain or not height or height % 2 or not width or width % 2 or weights.shape[1] > 4:
        return False
    outputs, channels, rows, columns = weights.shape
    # SpaceToDepth's channel (dy * 2 + dx) * channels + c holds pixel (2y + dy, 2x + dx) of channel c.
    stacked = np.zeros((outputs, 4 * channels, (rows + 1) // 2, (columns + 1) // 2), weights.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            taps = weights[:, :, dy::2, dx::2]
            first = (dy * 2 + dx) * channels
            stacked[:, first : first + channels, : taps.shape[2], : taps.shape[3]] = taps
    _set(graph, conv.input[1], stacked)
    moved = f"{conv.input[0]}/space_to_depth"
    position = list(graph.node).index(conv)
    graph.node.insert(position, onnx.helper.make_node("SpaceToDepth", [conv.input[0]], [moved], blocksize=2))
    conv.input[0] = moved
    _set_attribute(conv, "strides", [1, 1])
    _set_attribute(conv, "kernel_shape", list(stacked.shape[2:]))
    return True


def shortcut_pools_as_convolutions(model: onnx.ModelProto) -> bool:
    """Each 2x2/2 average pool without padding (and the Pad that only adds zero channels after it) as a
    2x2/2 convolution."""
    graph = model.graph
    values, shapes = _initializers(graph), _shapes(model)
    changed = False
    for pool in [node for node in graph.node if node.op_type == "AveragePool"]:
        attributes = _attributes(pool)
        channels = (shapes.get(pool.input[0]) or [0, 0])[1]
        if (
            list(attributes.get("kernel_shape", [])) != [2, 2]
            or list(attributes.get("strides", [])) != [2, 2]
            or any(attributes.get("pads", []))
            or attributes.get("ceil_mode", 0)
            or not channels
        ):
            continue
        output, added = pool.output[0], 0
        pad = _only_user(graph, output)
        if pad is not None and pad.op_type == "Pad" and len(pad.input) == 2 and pad.input[1] in values:
            before, after = values[pad.input[1]].reshape(2, -1)
            constant = _attributes(pad).get("mode", b"constant") == b"constant"
            if constant and not before.any() and not after[[0, 2, 3]].any():
                output, added = pad.output[0], int(after[1])
                graph.node.remove(pad)
        weights = np.zeros((channels + added, channels, 2, 2), np.float32)
        weights[np.arange(channels), np.arange(channels)] = 0.25
        name = f"{pool.output[0]}/as_convolution"
        _set(graph, name, weights)
        pool.op_type = "Conv"
        del pool.attribute[:]
        pool.attribute.extend(
            [
                onnx.helper.make_attribute("kernel_shape", [2, 2]),
                onnx.helper.make_attribute("strides", [2, 2]),
            ]
        )
        pool.input.append(name)
        pool.output[0] = output
        changed = True
    return changed


def _initializers(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    return {
        value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in (*inferred.graph.value_info, *inferred.graph.input)
    }


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _set_attribute(node: onnx.NodeProto, name: str, ints: list[int]) -> None:
    for attribute in node.attribute:
        if attribute.name == name:
            attribute.ints[:] = ints


def _only_user(graph: onnx.GraphProto, tensor: str) -> onnx.NodeProto | None:
    """The one node that reads ``tensor``, where exactly one does and it is not a graph output."""
    users = [node for node in graph.node if tensor in node.input]
    if len(users) != 1 or tensor in {value.name for value in graph.output}:
        return None
    return users[0]


def _set(graph: onnx.GraphProto, name: str, array: np.ndarray) -> None:
    """Create or replace initializer ``name``; the exporter's record of its old shape goes (shape
    inference checks against it)."""
    tensor = numpy_helper.from_array(array, name)
    existing = next((t for t in graph.initializer if t.name == name), None)
    if existing is None:
        graph.initializer.append(tensor)
    else:
        existing.CopyFrom(tensor)
    for value in list(graph.value_info):
        if value.name == name:
            graph.value_info.remove(value)
