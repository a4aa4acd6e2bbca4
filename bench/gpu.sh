#!/usr/bin/env bash
# The GPU sitting (one run, ~6 minutes): the service with and without the GPU on the same machine.
#
#   bench/gpu.sh                      # results in bench/results/*-gpu*.json, then: python bench/report.py
#   OUT_DIR=/tmp/r DATA=/path/lfw bench/gpu.sh
#
# Needs python3 (PYTHON) with the service and onnxruntime-gpu: `pip install -e '.[gpu]' httpx` on a
# plain host (the `gpu` extra brings the CUDA and cuDNN libraries as NVIDIA wheels), or, on the lent
# machine, `source .device/install.sh` (../shared/tools/device/README.md); an NVIDIA GPU; LFW (DATA).
# On CUDA, P-Net runs on fixed canvases, which needs the onnx package (the gpu extra has it); the
# device tool's wheel list lacks it: before the runs, also `python3 -m pip download -q --no-deps
# --only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64 -d .device/whl onnx
# protobuf` (step 1 says whether it is there; without it detection runs on each photo's own size).
# In order of importance, each step bounded by what is left of BUDGET_S:
#   1. a CUDA session really runs (else stop: nothing below would mean anything);
#   2. bench/devices.py: MTCNN ms per photo on 1 core, all cores and CUDA (and whether CUDA finds the
#      same faces), MTCNN photos/s at 1, 2, 8 and 32 photos a call (LFW and mixed sizes; P-Net on its
#      canvases or on each photo's own size), each MTCNN network alone through onnxruntime's profiler
#      (ms per run, node kinds by kernel time, nodes left on the CPU), embedding faces/s per batch size
#                                                                        -> devices-gpu.json
#   3. bench/load.py, POST /v1/verify at concurrency 1, 8, 32, 64 with FACEVER_DEVICE=cuda
#                                                                        -> load-gpu.json
#   4. the same with FACEVER_DEVICE=cpu (the CPU only, same machine)     -> load-gpu-machine-cpu.json
#   5. the CPU only on 2, 4, 8 and 16 cores (taskset), concurrency 32   -> load-gpu-machine-cpu-N.json
#   6. with the GPU and embedding batches (FACEVER_BATCH_WINDOW_MS=2), concurrency 32
#                                                                        -> load-gpu-batching.json
#   7. detection on the GPU in cross-request batches (FACEVER_DETECTION_DEVICE=cuda,
#      FACEVER_DETECTION_BATCH_WINDOW_MS=2, embedding batches too), concurrency 32 and 64
#                                                                        -> load-gpu-detect-cuda-batched.json
# The model is the float network (MODEL, default model/float): the default model's int8 graph has not
# been timed on CUDA yet (onnxruntime's CUDA provider runs its quantise/dequantise steps around float
# convolutions); pass MODEL=model/default to time it.
# Every file lands in OUT_DIR; on the lent machine, point OUT_DIR at $OUT (at most 8 files come back:
# these are 7 and the log, with 2/4/8/16 counted as 4, so pass CORES="2 16" there).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/data/lfw}
OUT_DIR=${OUT_DIR:-bench/results}
DURATION=${DURATION:-6}  # seconds per load level
CORES=${CORES:-2 4 8 16} # step 5's core counts
PAIRS=${PAIRS:-100}
CLIENTS=${CLIENTS:-4}    # load client processes: one Python client tops out below the GPU server
BUDGET_S=${BUDGET_S:-480}
MODEL=${MODEL:-model/float}
export PYTHONUNBUFFERED=1
deadline=$((SECONDS + BUDGET_S))
left() { local s=$((deadline - SECONDS)); echo $((s > 0 ? s : 1)); }
log() { printf '[gpu.sh %(%H:%M:%S)T +%ss] %s\n' -1 "$SECONDS" "$*"; }
bench() { (cd bench && timeout "$(left)" "$PYTHON" "$@" --model "$MODEL_ABS" --data "$DATA_ABS" --out "$OUT_ABS"); }
mkdir -p "$OUT_DIR"
DATA_ABS=$(cd "$DATA" && pwd)
OUT_ABS=$(cd "$OUT_DIR" && pwd)
MODEL_ABS=$(cd "$MODEL" && pwd)
export MODEL_ABS
cores=$(nproc)

log "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none); $cores cores"
# From bench/: in the repository's root, ./facever (the CLI's folder) would shadow the package.
(cd bench && "$PYTHON" -) <<'PY' || { log "FAIL: onnxruntime cannot run the model on CUDA here"; exit 1; }
import onnxruntime
from facever.model.onnx_session import create_session
print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
import os
session = create_session(os.environ["MODEL_ABS"] + "/facever.onnx", device="cuda")  # raises unless CUDA runs it
print("a CUDA session runs:", session.get_providers())
import importlib.util
print("onnx for P-Net's canvases:", "yes" if importlib.util.find_spec("onnx") else "MISSING (own sizes only)")
PY

log "2. detection and embedding per device ($(left) s left)"
bench devices.py --name devices-gpu --photos 200

levels=1,8,32,64
log "3. load with the GPU ($(left) s left)"
FACEVER_DEVICE=cuda bench load.py --name load-gpu --levels $levels --duration "$DURATION" --pairs "$PAIRS" --clients "$CLIENTS"
log "4. load on the CPU only, same machine ($(left) s left)"
FACEVER_DEVICE=cpu bench load.py --name load-gpu-machine-cpu --levels $levels --duration "$DURATION" --pairs "$PAIRS" --clients "$CLIENTS"

for n in $CORES; do
  [[ $n -le $cores ]] || continue
  log "5. the CPU only on $n cores ($(left) s left)"
  FACEVER_DEVICE=cpu bench load.py --name "load-gpu-machine-cpu-$n" --cpus "0-$((n - 1))" --levels 32 \
    --duration "$DURATION" --pairs "$PAIRS" --clients "$CLIENTS"
done

log "6. with the GPU and embedding batches ($(left) s left)"
FACEVER_DEVICE=cuda FACEVER_BATCH_WINDOW_MS=2 bench load.py --name load-gpu-batching --levels 32 \
  --duration "$DURATION" --pairs "$PAIRS" --clients "$CLIENTS"

log "7. detection on the GPU in cross-request batches ($(left) s left)"
FACEVER_DEVICE=cuda FACEVER_DETECTION_DEVICE=cuda FACEVER_DETECTION_BATCH_WINDOW_MS=2 FACEVER_BATCH_WINDOW_MS=2 \
  bench load.py --name load-gpu-detect-cuda-batched --levels 32,64 \
  --duration "$DURATION" --pairs "$PAIRS" --clients "$CLIENTS"
log "done in $SECONDS s; results in $OUT_DIR"
