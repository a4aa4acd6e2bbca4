import numpy as np
import onnx
import torch

from facever.model.alignment import align, template
from facever.model.detection import DetectorConfig, FaceDetector
from facever.model.images import read_image, to_luma
from facever.model.onnx_session import create_session
from facever.training.networks.facever_small import EmbeddingNet
from facever.training.onnx_export import INPUT_NAME, OPSET, export_onnx

KEYS = [
    "Aaron_Eckhart/Aaron_Eckhart_0001",
    "Serena_Williams/Serena_Williams_0003",
    "Colin_Powell/Colin_Powell_0005",
    "George_W_Bush/George_W_Bush_0010",
    "Jennifer_Aniston/Jennifer_Aniston_0001",
    "Tony_Blair/Tony_Blair_0002",
]


def real_crops(lfw_image, size: int) -> np.ndarray:
    detector = FaceDetector(DetectorConfig(), device="cpu", threads=1)
    crops = []
    for key in KEYS:
        image = read_image(lfw_image(key))
        face = detector.detect(image)[0]
        crops.append(to_luma(align(image, face.landmarks, template(size), size)))
    return np.stack(crops)


def test_onnx_export_matches_pytorch_on_real_aligned_faces(lfw_image, tmp_path):
    torch.manual_seed(0)
    model = EmbeddingNet(input_size=64)
    crops = real_crops(lfw_image, 64)
    pixels = torch.from_numpy(crops[:, None].astype(np.float32))
    with torch.no_grad():  # give batch norm real statistics so that the outputs are not degenerate
        model.train()
        model(pixels)
    model.eval()
    with torch.no_grad():
        expected = model(pixels).numpy()

    path = export_onnx(model, tmp_path)
    graph = onnx.load(str(path))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis

    session = create_session(path, device="cpu")
    for batch in (pixels[:1], pixels):  # batch 1 and batch 6 through the same file
        got = session.run(None, {INPUT_NAME: batch.numpy()})[0]
        cosine = (got * expected[: len(batch)]).sum(1) / np.linalg.norm(got, axis=1)
        assert cosine.min() >= 0.9999
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # and the faces really differ: the check is not passing on identical vectors
    assert (expected @ expected.T)[np.triu_indices(len(KEYS), 1)].min() < 0.999
