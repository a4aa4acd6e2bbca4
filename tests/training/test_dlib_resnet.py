"""dlib's face ResNet run without dlib (training/networks: dlib_format + DlibResNet) against dlib itself.

The faces: the first image of the first 60 LFW people (sorted) on which dlib's HOG detector finds a
face; each is aligned by dlib (5-point shape predictor, get_face_chip 150 px, padding 0.25) and the
same chip goes to dlib's compute_face_descriptor and to the exported ONNX file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

dlib = pytest.importorskip("dlib")
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from facever.training.networks.dlib_format import RESNET_FILE, dlib_models_dir, read_dlib_resnet  # noqa: E402
from facever.training.networks.dlib_resnet import DlibResNet  # noqa: E402
from facever.training.onnx_export import INPUT_NAME, export_onnx  # noqa: E402

FACES = 60

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models() -> Path:
    return dlib_models_dir()


@pytest.fixture(scope="module")
def chips(lfw_root, models) -> np.ndarray:
    """(FACES, 150, 150, 3) uint8 RGB chips, aligned by dlib."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    found = []
    for person in sorted(p for p in (lfw_root / "images").iterdir() if p.is_dir()):
        first = sorted(person.glob("*.jpg"))[0]
        rgb = np.asarray(Image.open(first).convert("RGB"))  # LFW's grey JPEGs: the channel repeated
        boxes = detector(rgb, 0)
        if not boxes:
            continue
        box = max(boxes, key=lambda b: b.area())
        found.append(dlib.get_face_chip(rgb, predictor(rgb, box), size=150, padding=0.25))
        if len(found) == FACES:
            break
    assert len(found) == FACES
    return np.stack(found)


@pytest.fixture(scope="module")
def dlib_descriptors(chips, models) -> np.ndarray:
    recognizer = dlib.face_recognition_model_v1(str(models / RESNET_FILE))
    return np.array([np.array(recognizer.compute_face_descriptor(chip)) for chip in chips], dtype=np.float64)


@pytest.fixture(scope="module")
def model() -> DlibResNet:
    return DlibResNet.from_dlib()


@pytest.fixture(scope="module")
def session(model, tmp_path_factory) -> ort.InferenceSession:
    path = export_onnx(model, tmp_path_factory.mktemp("dlib-onnx"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def nchw(chips: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)


def test_onnx_export_matches_dlib_descriptor_on_every_face(chips, dlib_descriptors, session):
    ours = session.run(None, {INPUT_NAME: nchw(chips)})[0].astype(np.float64)
    theirs = dlib_descriptors / np.linalg.norm(dlib_descriptors, axis=1, keepdims=True)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1)
    print(f"\ncosine to dlib over {len(cosine)} faces: min {cosine.min():.9f}, mean {cosine.mean():.9f}")
    assert cosine.min() >= 0.999, f"worst face {cosine.argmin()}: cosine {cosine.min():.6f}"
    # not a vacuous pass: different people get clearly different descriptors
    assert (theirs @ theirs.T)[np.triu_indices(len(theirs), 1)].min() < 0.9


def test_raw_features_equal_dlib_descriptor(chips, dlib_descriptors, model):
    with torch.no_grad():
        ours = model.features(torch.from_numpy(nchw(chips))).double().numpy()
    relative = np.linalg.norm(ours - dlib_descriptors, axis=1) / np.linalg.norm(dlib_descriptors, axis=1)
    print(f"\nrelative Euclidean error of the raw descriptor: max {relative.max():.2e}")
    assert relative.max() <= 1e-3


def test_torch_module_equals_onnx(chips, model, session):
    pixels = nchw(chips[:4])
    with torch.no_grad():
        expected = model(torch.from_numpy(pixels)).numpy()
    for batch in (pixels[:1], pixels):  # the batch axis is dynamic
        got = session.run(None, {INPUT_NAME: batch})[0]
        assert got.shape == (len(batch), 128)
        np.testing.assert_allclose(got, expected[: len(batch)], atol=1e-5)


def test_reader_takes_the_file_apart_and_rejects_damaged_copies(models, tmp_path):
    data = (models / RESNET_FILE).read_bytes()
    weights = read_dlib_resnet(models / RESNET_FILE)
    assert len(weights.convs) == len(weights.affines) == 29
    assert weights.convs[0][0].shape == (32, 3, 7, 7) and weights.fc.shape == (128, 256)
    assert np.allclose(weights.mean_rgb, (122.782, 117.001, 104.298), atol=1e-4)
    assert weights.distance_threshold == pytest.approx(0.6)

    damaged = {
        "truncated": data[: len(data) // 2],
        "trailing": data + b"\x00",
        "garbage": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "wrong_layer": data.replace(b"relu_", b"sig__", 1),
        "empty": b"",
    }
    for name, content in damaged.items():
        path = tmp_path / f"{name}.dat"
        path.write_bytes(content)
        with pytest.raises(ValueError, match="not a dlib face ResNet file"):
            read_dlib_resnet(path)
