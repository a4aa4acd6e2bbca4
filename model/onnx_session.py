"""One place that creates onnxruntime sessions, so every part of facever picks providers the same way."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

log = logging.getLogger("facever.model")

GPU_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"

_dlls_preloaded = False
_shared_arena_lock = threading.Lock()
_shared_arena_registered = False


def _preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that came as NVIDIA wheels (onnxruntime-gpu's ``cuda`` and
    ``cudnn`` extras), so that no LD_LIBRARY_PATH is needed; where they are not installed, the
    system's are used (a CUDA base image). Only onnxruntime-gpu >= 1.21 has ``preload_dlls``."""
    global _dlls_preloaded
    if _dlls_preloaded or not hasattr(ort, "preload_dlls"):
        return
    _dlls_preloaded = True
    try:
        ort.preload_dlls()
    except Exception as error:  # noqa: BLE001 - a failure here shows again, clearly, when the session loads
        log.warning("onnxruntime.preload_dlls() failed: %s", error)


def _use_shared_cpu_arena(options: ort.SessionOptions) -> None:
    """Let the session allocate its CPU buffers from one arena that every facever session in the
    process shares, instead of an arena of its own. The four networks of a photo then reuse the same
    memory pages: on a host that loses a process's caches and address translations between photos
    (BENCHMARKS.md, "What a gap costs"), a photo touches fewer of them (bench/speed.py ~4 % faster
    against dlib there), and four threads on one pipeline end ~18 MiB smaller. Same kernels, same
    numbers."""
    global _shared_arena_registered
    with _shared_arena_lock:
        if not _shared_arena_registered:
            arena = ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR
            memory = ort.OrtMemoryInfo("Cpu", arena, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))  # the default settings
            _shared_arena_registered = True
    options.add_session_config_entry("session.use_env_allocators", "1")


def preferred_providers(device: str = "auto") -> list[str]:
    """Providers to ask for: CUDA first when onnxruntime has it (and ``device`` allows), CPU always."""
    if device not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    available = ort.get_available_providers()
    if device == "cuda" and GPU_PROVIDER not in available:
        raise RuntimeError(
            "device=cuda was asked for but this onnxruntime has no CUDAExecutionProvider "
            f"(available: {available}); install the 'gpu' extra (onnxruntime-gpu)"
        )
    if device != "cpu" and GPU_PROVIDER in available:
        return [GPU_PROVIDER, CPU_PROVIDER]
    return [CPU_PROVIDER]


def create_session(
    path: str | Path | bytes,
    device: str = "auto",
    threads: int = 0,
    cuda_options: dict[str, Any] | None = None,
) -> ort.InferenceSession:
    """Open an ONNX file (or a model given as bytes). ``threads`` = 0 lets onnxruntime use every core.
    ``device="cuda"`` raises when the session cannot run on CUDA (libraries missing, no GPU), instead
    of running on the CPU."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    requested = preferred_providers(device)
    providers: list[str | tuple[str, dict[str, Any]]] = list(requested)
    if requested[0] == GPU_PROVIDER:
        _preload_cuda_libraries()
        providers[0] = (GPU_PROVIDER, dict(cuda_options or {}))
    else:
        _use_shared_cpu_arena(options)
    source = path if isinstance(path, bytes) else str(path)
    session = ort.InferenceSession(source, sess_options=options, providers=providers)
    if requested[0] == GPU_PROVIDER and session.get_providers()[0] != GPU_PROVIDER:
        # onnxruntime falls back to CPU silently when the CUDA libraries fail to load.
        name = "a model given as bytes" if isinstance(path, bytes) else Path(path).name
        message = f"CUDAExecutionProvider was available but did not load for {name}"
        if device == "cuda":
            raise RuntimeError(
                f"{message} (FACEVER_DEVICE=cuda): the CUDA or cuDNN libraries onnxruntime-gpu "
                f"{ort.__version__} needs, or a GPU and its driver, are missing; see onnxruntime's "
                "log above"
            )
        log.warning("%s; running on CPU", message)
    return session


def runs_on_gpu(session: ort.InferenceSession) -> bool:
    return session.get_providers()[0] == GPU_PROVIDER


def bucket(n: int) -> int:
    """The smallest power of two >= n."""
    return 1 << max(0, (n - 1).bit_length())


def run_batch(session: ort.InferenceSession, name: str, batch: np.ndarray, pad: bool) -> list[np.ndarray]:
    """``session``'s outputs for a batch fed as input ``name``; with ``pad`` (on CUDA) run padded to a
    power of two (pad_to_bucket) and the padding's rows dropped again."""
    if not pad:
        return session.run(None, {name: batch})
    return [output[: len(batch)] for output in session.run(None, {name: pad_to_bucket(batch)})]


def pad_to_bucket(batch: np.ndarray) -> np.ndarray:
    """``batch`` with zero rows added up to a power of two. On CUDA every new input shape costs a new
    plan (for a convolution: a search for its fastest algorithm, up to hundreds of ms), so batches
    of varying size are run in a handful of sizes; the caller drops the padding's outputs."""
    size = bucket(len(batch))
    if size == len(batch):
        return batch
    padded = np.zeros((size, *batch.shape[1:]), batch.dtype)
    padded[: len(batch)] = batch
    return padded
