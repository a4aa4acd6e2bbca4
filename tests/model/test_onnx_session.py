import numpy as np
import onnxruntime as ort
import pytest

from facever.model.card import ONNX_FILE
from facever.model.onnx_session import create_session

DEFAULT_MODEL = "model/default"


def env_allocators(session: ort.InferenceSession) -> str | None:
    try:
        return session.get_session_options().get_session_config_entry("session.use_env_allocators")
    except RuntimeError:  # the entry was never set
        return None


@pytest.fixture(scope="module")
def model_path(request):
    return request.config.rootpath / DEFAULT_MODEL / ONNX_FILE


def test_cpu_sessions_share_one_arena(model_path):
    first, second = create_session(model_path, "cpu", threads=1), create_session(model_path, "cpu", threads=1)
    assert env_allocators(first) == env_allocators(second) == "1"


def test_the_shared_arena_gives_the_same_numbers_as_a_session_of_its_own(model_path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    own = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    assert env_allocators(own) is None
    shared = create_session(model_path, "cpu", threads=1)
    name = own.get_inputs()[0].name
    rng = np.random.default_rng(0)
    for batch in (1, 2, 5):  # different shapes: the arena's buffers are reused between them
        pixels = rng.integers(0, 256, (batch, 3, 150, 150)).astype(np.float32)
        assert np.array_equal(shared.run(None, {name: pixels})[0], own.run(None, {name: pixels})[0])
