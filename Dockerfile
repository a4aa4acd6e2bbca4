# syntax=docker/dockerfile:1
#
# facever, the service only (no torch, no compilers), with the shipped model inside.
#
#   CPU (default):  docker build -t facever:cpu .
#   NVIDIA GPU:     docker build -t facever:gpu --build-arg VARIANT=gpu \
#                       --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 .
#                   docker run --gpus all -p 8000:8000 facever:gpu
#
# VARIANT picks the onnxruntime build, BASE_IMAGE the image it runs on; they go together:
#   cpu  python:3.11-slim (the default)                        + onnxruntime      (extra `serve`)
#   gpu  nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04          + onnxruntime-gpu  (extra `gpu-cuda12`)
#        (any CUDA 12 + cuDNN 9 runtime image; the build stops when VARIANT=gpu gets a base
#        without them, so the GPU image can never silently fall back to the CPU)
# The one base image is used for the build and the runtime stage: buildah/podman (used to test
# this file) do not resolve `FROM stage-${ARG}`, so the variant is chosen inside the stages.
# The CUDA base ships Ubuntu 24.04's Python 3.12 (the project supports >= 3.11; the Ubuntu 22.04
# CUDA images only have a 3.11 release candidate). The extra `gpu-cuda12` pins onnxruntime-gpu below
# 1.27 because 1.27 and later on PyPI are CUDA 13 builds: raise the base image to CUDA 13 together
# with that pin, never one without the other. (On a plain host, the extra `gpu` brings CUDA 13 and
# cuDNN as NVIDIA wheels instead.)
#
# Both variants run `facever serve` on 0.0.0.0:8000 as the unprivileged user `facever`, keep the
# SQLite default under the volume /data, and check themselves with GET /healthz.

ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# Base: Python and nothing else (on the CUDA image: Ubuntu's Python 3.12 from apt).
FROM ${BASE_IMAGE} AS base
ARG VARIANT=cpu
ENV FACEVER_VARIANT=${VARIANT}
RUN set -eu; \
    case "$FACEVER_VARIANT" in cpu|gpu) ;; *) echo "VARIANT must be cpu or gpu, not '$FACEVER_VARIANT'" >&2; exit 1;; esac; \
    if [ "$FACEVER_VARIANT" = gpu ]; then \
        cuda="${CUDA_VERSION:-none}"; \
        if [ "${cuda%%.*}" != 12 ] || ! ldconfig -p | grep -q 'libcudnn\.so\.9'; then \
            echo "VARIANT=gpu needs a CUDA 12 + cuDNN 9 runtime base (CUDA_VERSION=$cuda):" >&2; \
            echo "  --build-arg VARIANT=gpu --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04" >&2; \
            exit 1; \
        fi; \
    fi; \
    if ! command -v python3 >/dev/null || ! python3 -c 'import sys, venv; assert sys.version_info >= (3, 11)' 2>/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.12 python3.12-venv ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
        ln -sf /usr/bin/python3.12 /usr/local/bin/python3; \
    fi; \
    python3 --version

# ---------------------------------------------------------------------------------------------
# Build stage: a virtual environment in /opt/facever with facever and its serving dependencies
# (every one of them is a binary wheel: no compiler needed).
FROM base AS build
# Offered by ../shared/tools/container/verify-image.sh (the build machine's CA bundle / index).
ARG PIP_CERT
ARG PIP_INDEX_URL
ARG PIP_DEFAULT_TIMEOUT=60
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/facever \
 && /opt/facever/bin/pip install --upgrade pip
WORKDIR /src
COPY pyproject.toml README.md ./
COPY facever ./facever
COPY model ./model
COPY training ./training
COPY app ./app
# The CPU image gets onnxruntime (extra `serve`), the GPU image onnxruntime-gpu (extra `gpu-cuda12`);
# never both: they install the same `onnxruntime` module. The checks run from / so that the
# installed package is imported, not the source tree in /src; torch must not be importable.
# Then the image is slimmed: pip and setuptools, the bytecode caches (~60 MB; at run time they are
# written under /tmp, see PYTHONPYCACHEPREFIX) and the libraries' own test suites (~17 MB) go.
RUN extra=$([ "$FACEVER_VARIANT" = gpu ] && echo gpu-cuda12 || echo serve) \
 && /opt/facever/bin/pip install ".[$extra]" \
 && /opt/facever/bin/pip uninstall -y setuptools pip \
 && cd / \
 && test -f "$(/opt/facever/bin/python -c 'from facever.app.core.config import shipped_model_dir; print(shipped_model_dir() / "facever.onnx")')" \
 && ! /opt/facever/bin/python -c "import torch" 2>/dev/null \
 && find /opt/facever -depth \( -name __pycache__ -o -path '*/site-packages/*/tests' \) -exec rm -rf {} + \
 && /opt/facever/bin/python -B -c "import facever.app.main, numpy, onnxruntime; print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"

# ---------------------------------------------------------------------------------------------
# Runtime stage: the base image, the virtual environment, an unprivileged user.
FROM base AS runtime
RUN useradd --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin facever \
 && mkdir -p /data \
 && chown facever:facever /data
COPY --from=build /opt/facever /opt/facever
ENV PATH=/opt/facever/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONPYCACHEPREFIX=/tmp/pycache \
    FACEVER_HOST=0.0.0.0 \
    FACEVER_PORT=8000 \
    FACEVER_DATABASE_URL=sqlite:////data/facever.db
USER facever
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# /healthz answers as soon as the process serves; the model loads before uvicorn listens.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FACEVER_PORT', '8000'), timeout=4)"]
CMD ["facever", "serve"]
