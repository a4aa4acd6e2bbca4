import numpy as np
import onnxruntime as ort

from facever.app.core.config import shipped_model_dir
from facever.model.card import ONNX_FILE
from facever.model.onnx_session import create_session

MODEL_PATH = shipped_model_dir() / ONNX_FILE


def env_allocators(session: ort.InferenceSession) -> str | None:
    try:
        return session.get_session_options().get_session_config_entry("session.use_env_allocators")
    except RuntimeError:  # the entry was never set
        return None


def test_cpu_sessions_share_one_arena():
    first, second = create_session(MODEL_PATH, "cpu", threads=1), create_session(MODEL_PATH, "cpu", threads=1)
    assert env_allocators(first) == env_allocators(second) == "1"


def test_the_shared_arena_gives_the_same_numbers_as_a_session_of_its_own():
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    own = ort.InferenceSession(str(MODEL_PATH), sess_options=options, providers=["CPUExecutionProvider"])
    assert env_allocators(own) is None
    shared = create_session(MODEL_PATH, "cpu", threads=1)
    name = own.get_inputs()[0].name
    rng = np.random.default_rng(0)
    for batch in (1, 2, 5):  # different shapes: the arena's buffers are reused between them
        pixels = rng.integers(0, 256, (batch, 3, 150, 150)).astype(np.float32)
        assert np.array_equal(shared.run(None, {name: pixels})[0], own.run(None, {name: pixels})[0])
