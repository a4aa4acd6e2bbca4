"""The shipped int8 network gives the same numbers on every x86 CPU. onnxruntime multiplies uint8
activations by int8 weights with VNNI where the CPU has it (exact), and on AVX2 alone with VPMADDUBSW,
which adds two products in a saturating 16-bit sum: exact only while |weight| <= 64
(training/quantize.py, quantise_static).

The exact sums can be checked on this CPU alone (against the same network with uint8 weights), but "the
same numbers as on another CPU" only against numbers that another CPU computed: GOLDEN holds the shipped
network's outputs on the test pixels as a CPU with AVX-512 VNNI computed them (AMD EPYC, Zen 5), with
the SHA-256 of the model file they belong to. Written by ``python tests/model/test_int8_on_every_cpu.py``
after the model changes."""

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from facever.app.core.config import shipped_model_dir
from facever.model.card import ONNX_FILE

MODEL_PATH = shipped_model_dir() / ONNX_FILE
GOLDEN = Path(__file__).parent / "data" / "shipped_int8_outputs.npz"


def int8_weights(model: onnx.ModelProto) -> list[tuple[onnx.TensorProto, onnx.TensorProto | None]]:
    """The int8 tensors the graph dequantises (its weights), each with its zero point where it has one."""
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    return [
        (initializers[node.input[0]], initializers.get(node.input[2]) if len(node.input) > 2 else None)
        for node in model.graph.node
        if node.op_type == "DequantizeLinear"
        and node.input[0] in initializers
        and initializers[node.input[0]].data_type == onnx.TensorProto.INT8
    ]


def with_uint8_weights(model: onnx.ModelProto) -> bytes:
    """The same network with each int8 weight w stored as uint8 w + 128 with zero point z + 128: the same
    integer sums, which onnxruntime computes by widening to 16 bits, without saturation, on any CPU."""
    for weights, zero_point in int8_weights(model):
        if zero_point is None:
            continue
        for tensor in (weights, zero_point):
            shifted = numpy_helper.to_array(tensor).astype(np.int16) + 128
            tensor.CopyFrom(numpy_helper.from_array(shifted.astype(np.uint8), tensor.name))
    return model.SerializeToString()


def test_the_weights_fit_in_seven_bits():
    weights = [numpy_helper.to_array(tensor) for tensor, _ in int8_weights(onnx.load(MODEL_PATH))]
    weights = [w for w in weights if w.size > 1]
    assert len(weights) > 20  # every convolution's, and the last layer's
    assert all(-64 <= w.min() and w.max() <= 64 for w in weights)


def high_contrast_pixels() -> np.ndarray:
    # Bright, high-contrast pixels drive activations towards 255, where saturation would show.
    pixels = np.random.default_rng(0).choice([0.0, 255.0], (4, 3, 150, 150)).astype(np.float32)
    pixels[2:] = np.random.default_rng(1).integers(0, 256, (2, 3, 150, 150))
    return pixels


def outputs(model: str | bytes) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: high_contrast_pixels()})[0]


def model_sha256() -> str:
    return hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()


def test_this_cpu_computes_the_exact_integer_sums():
    exact = outputs(with_uint8_weights(onnx.load(MODEL_PATH)))
    np.testing.assert_array_equal(outputs(str(MODEL_PATH)), exact)


def test_this_cpu_gives_the_numbers_another_cpu_gave():
    golden = np.load(GOLDEN)
    assert str(golden["model_sha256"]) == model_sha256(), (
        f"{GOLDEN.name} belongs to another model file: run python tests/model/test_int8_on_every_cpu.py"
    )
    # Unit embeddings. The integer sums are exact everywhere, but the global average pooling before the
    # last layer sums in float, in an order that may differ between CPUs, and rounding its mean to a
    # quantisation step (~3e-3 in the output) could flip a step now and then: one step in one place
    # costs a cosine of 4e-6. Clipped sums (1.0.0 on AVX2 alone) moved a pair's score by 5e-3 (BENCHMARKS.md).
    cosines = np.sum(outputs(str(MODEL_PATH)) * golden["outputs"], axis=1)
    assert cosines.min() > 1 - 1e-5, cosines


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez(GOLDEN, outputs=outputs(str(MODEL_PATH)), model_sha256=model_sha256())
    print(f"wrote {GOLDEN}")
