"""One place that creates onnxruntime sessions, so every part of facever picks providers the same way."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger("facever.model")

GPU_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


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


def create_session(path: str | Path, device: str = "auto", threads: int = 0) -> ort.InferenceSession:
    """Open an ONNX file. ``threads`` = 0 lets onnxruntime use every core."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=preferred_providers(device))
    requested = preferred_providers(device)
    if requested[0] == GPU_PROVIDER and session.get_providers()[0] != GPU_PROVIDER:
        # onnxruntime falls back to CPU silently when the CUDA libraries fail to load: say it loudly.
        log.warning(
            "CUDAExecutionProvider was available but did not load for %s; running on CPU", Path(path).name
        )
    return session
