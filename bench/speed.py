"""Per-face speed of facever and dlib on the same LFW images: detection + alignment and embedding timed
separately per image (median, p95), on one core and on all cores, with the ratio dlib ÷ facever;
facever's embedding also in batches of 1, 8, 32 and 128 faces. When onnxruntime has the CUDA
provider, facever is measured on the GPU as well.

Each setting runs in its own worker process, started with its thread settings in place: one core
is ``taskset -c <cpu>`` (or sched_setaffinity), OMP/OpenBLAS/MKL threads 1 and onnxruntime
intra-op threads 1; all cores is every default. Within a worker, both engines take each image in
turn (alternating which goes first), so drift in the machine's speed hits both alike.

What is timed: facever: MTCNN detection + the aligned 64-px (card's size) crop; then the ONNX
embedding of that one crop. dlib (face_recognition's recipe): HOG detection (upsampled once) +
5-point landmarks + the 150-px face chip; then the ResNet descriptor of that chip. Decoding the JPEG
is not timed (the same for both); neither is dlib's grey-to-RGB copy. With no face found, facever
embeds its centre crop and dlib the whole image, as in the accuracy benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

BATCHES = (1, 8, 32, 128)
WARMUP = 3  # untimed passes over the first image per engine


# -- the worker: one setting (device, threads), both engines -------------------------------------


def worker(spec: dict) -> dict:
    if spec["threads"] == 1 and len(os.sched_getaffinity(0)) > 1:  # taskset was not available
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from facever.model.images import read_image
    from facever.model.onnx_session import GPU_PROVIDER
    from facever.model.runtime import FacePipeline
    from facever.training.lfw import LFW

    lfw = LFW(Path(spec["data"]))
    images = [read_image(lfw.path(key)) for key in spec["keys"]]
    pipeline = FacePipeline(spec["model"], spec["device"], spec["threads"])
    if spec["device"] == "cuda" and pipeline.providers[0] != GPU_PROVIDER:
        raise SystemExit(f"CUDA was asked for but the embedding runs on {pipeline.providers}")
    engines = {"facever": FaceverEngine(pipeline)}
    if "dlib" in spec["engines"]:
        engines["dlib"] = DlibEngine()

    for engine in engines.values():
        for _ in range(WARMUP):
            engine.run(images[0])
    times = {name: {"detect_align": [], "embed": [], "found": 0} for name in engines}
    crops = []
    for i, image in enumerate(images):
        order = list(engines) if i % 2 == 0 else list(reversed(engines))
        for name in order:
            detect_align, embed, found = engines[name].run(image)
            times[name]["detect_align"].append(detect_align)
            times[name]["embed"].append(embed)
            times[name]["found"] += found
        crops.append(engines["facever"].last_crop)

    return {
        "label": spec["label"],
        "device": spec["device"],
        "threads": spec["threads"],
        "affinity": sorted(os.sched_getaffinity(0)),
        "providers": pipeline.providers,
        "detector_providers": pipeline.detector.providers,
        "images": len(images),
        "engines": {
            name: {
                "detect_align": common.latency_stats(t["detect_align"]),
                "embed": common.latency_stats(t["embed"]),
                "total": common.latency_stats(np.add(t["detect_align"], t["embed"])),
                "faces_found": t["found"],
            }
            for name, t in times.items()
        },
        "batch": batch_throughput(pipeline, crops, spec["batches"], spec["min_time"]),
    }


class FaceverEngine:
    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.last_crop = None

    def run(self, image: np.ndarray) -> tuple[float, float, bool]:
        start = time.perf_counter()
        faces = self.pipeline.detect(image)
        crop = self.pipeline.crop(image, faces[0] if faces else None)
        aligned = time.perf_counter()
        self.pipeline.embed(crop[None])
        done = time.perf_counter()
        self.last_crop = crop
        return aligned - start, done - aligned, bool(faces)


class DlibEngine:
    def __init__(self):
        import dlib

        from facever.training.teacher import RECIPE, DlibPeer, grey_to_rgb

        self.dlib, self.peer, self.jitters, self.to_rgb = dlib, DlibPeer(), RECIPE["jitters"], grey_to_rgb

    def run(self, image: np.ndarray) -> tuple[float, float, bool]:
        rgb = self.to_rgb(image)
        start = time.perf_counter()
        rects = self.peer.detect(rgb)
        rect = rects[0] if rects else self.dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
        shape = self.peer.shapes(rgb, rect)
        chip = self.dlib.get_face_chip(rgb, shape, 150, 0.25)  # what compute_face_descriptor(rgb, shape) does
        aligned = time.perf_counter()
        self.peer.encoder.compute_face_descriptor(chip, self.jitters)
        done = time.perf_counter()
        return aligned - start, done - aligned, bool(rects)


def batch_throughput(pipeline, crops: list[np.ndarray], sizes: list[int], min_time: float) -> dict:
    """Faces per second of the embedding network alone, per batch size (real aligned crops)."""
    pool = np.stack(crops)
    pool = np.concatenate([pool] * -(-max(sizes) // len(pool)))
    result = {}
    for size in sizes:
        batch = pool[:size]
        for _ in range(2):
            pipeline.embed(batch)
        runs, started = [], time.perf_counter()
        while len(runs) < 3 or (time.perf_counter() - started < min_time and len(runs) < 2000):
            start = time.perf_counter()
            pipeline.embed(batch)
            runs.append(time.perf_counter() - start)
        median = float(np.median(runs))
        result[str(size)] = {"faces_per_s": size / median, "ms_per_batch": median * 1000, "runs": len(runs)}
    return result


# -- the parent: one worker per setting, then the tables -----------------------------------------


def sample_keys(data: Path, n: int) -> list[str]:
    """n images of the LFW pairs, the same every run."""
    from facever.training.lfw import LFW

    keys = sorted({k for p in LFW(data).pairs() for k in (p.first, p.second)})
    return sorted(np.random.default_rng(0).choice(keys, size=n, replace=False).tolist())


def settings(engines: list[str], require_cuda: bool) -> list[dict]:
    import onnxruntime

    from facever.model.onnx_session import GPU_PROVIDER

    cpus = len(os.sched_getaffinity(0))
    chosen = [
        {"label": "1 thread", "device": "cpu", "threads": 1, "engines": engines},
        {"label": f"all cores ({cpus})", "device": "cpu", "threads": 0, "engines": engines},
    ]
    providers = onnxruntime.get_available_providers()
    if GPU_PROVIDER in providers:
        chosen.append({"label": "GPU", "device": "cuda", "threads": 0, "engines": ["facever"]})
    elif require_cuda:
        raise SystemExit(f"--require-cuda: onnxruntime lists no {GPU_PROVIDER} (providers: {providers})")
    return chosen


def run_worker(spec: dict, workdir: Path) -> dict:
    spec_file, out_file = workdir / f"spec-{spec['label']}.json", workdir / f"out-{spec['label']}.json"
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, __file__, "--worker", str(spec_file), "--worker-out", str(out_file)]
    env = dict(os.environ)
    if spec["threads"] == 1:
        env.update({name: "1" for name in common.THREAD_ENV})
        if shutil.which("taskset"):
            command = ["taskset", "-c", str(min(os.sched_getaffinity(0))), *command]
    print(f"speed: {spec['label']} ({', '.join(spec['engines'])}) ...", flush=True)
    subprocess.run(command, env=env, check=True)
    return json.loads(out_file.read_text())


def speed_ratios(runs: list[dict]) -> list[dict]:
    """dlib's median ÷ facever's, per setting; facever on the GPU is set against dlib on all cores."""
    dlib_cpu = {r["label"]: r["engines"]["dlib"] for r in runs if "dlib" in r["engines"]}
    all_cores = next((label for label in dlib_cpu if label.startswith("all cores")), None)
    ratios = []
    for run in runs:
        dlib_label = run["label"] if run["label"] in dlib_cpu else all_cores
        if dlib_label is None:
            continue
        dlib, facever = dlib_cpu[dlib_label], run["engines"]["facever"]
        ratio = {"facever": run["label"], "dlib": dlib_label}
        for part in ("detect_align", "embed", "total"):
            ratio[part] = dlib[part]["median_ms"] / facever[part]["median_ms"]
        ratios.append(ratio)
    return ratios


def tables(runs: list[dict], ratios: list[dict]) -> dict[str, str]:
    fmt = common.fmt
    per_image = []
    for run in runs:
        for name, e in run["engines"].items():
            per_image.append(
                [
                    name,
                    run["label"],
                    f"{fmt(e['detect_align']['median_ms'])} / {fmt(e['detect_align']['p95_ms'])}",
                    f"{fmt(e['embed']['median_ms'], 2)} / {fmt(e['embed']['p95_ms'], 2)}",
                    fmt(e["total"]["median_ms"]),
                    f"{e['faces_found']} / {run['images']}",
                ]
            )
    ratio_rows = [
        [
            r["facever"] if r["facever"] == r["dlib"] else f"facever {r['facever']} vs dlib {r['dlib']}",
            *(f"{r[part]:.1f}×" for part in ("detect_align", "embed", "total")),
        ]
        for r in ratios
    ]
    batch = [[run["label"]] + [fmt(b["faces_per_s"], 0) for b in run["batch"].values()] for run in runs]
    sizes = list(runs[0]["batch"])
    result = {
        "Per image, milliseconds (median / p95)": common.markdown_table(
            ["engine", "setting", "detection + alignment", "embedding", "total (median)", "face found"],
            per_image,
        ),
        "How many times faster facever is (dlib ÷ facever, medians)": common.markdown_table(
            ["setting", "detection + alignment", "embedding", "total"], ratio_rows
        ),
        "facever embedding throughput, faces/s by batch size": common.markdown_table(
            ["setting", *(f"batch {s}" for s in sizes)], batch
        ),
    }
    if not ratio_rows:
        del result["How many times faster facever is (dlib ÷ facever, medians)"]
    return result


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "speed")
    parser.add_argument("--images", type=int, help="images timed per setting (default 200; smoke 4)")
    parser.add_argument("--no-dlib", action="store_true", help="facever only (where dlib is missing)")
    parser.add_argument("--require-cuda", action="store_true", help="fail unless onnxruntime has CUDA")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.worker_out.write_text(json.dumps(worker(json.loads(args.worker.read_text()))))
        return

    run = common.Run("speed", args)
    n_images = args.images or (4 if args.smoke else 200)
    engines = ["facever"] if args.no_dlib else ["facever", "dlib"]
    keys = sample_keys(args.data, n_images)
    common_spec = {
        "keys": keys,
        "data": str(args.data),
        "model": str(args.model),
        "batches": list(BATCHES),
        "min_time": 0.05 if args.smoke else 2.0,
    }
    chosen = settings(engines, args.require_cuda)
    with tempfile.TemporaryDirectory() as workdir:
        runs = [run_worker({**spec, **common_spec}, Path(workdir)) for spec in chosen]
    config = {"model": common.model_info(args.model), "images": len(keys), "engines": engines}
    config.update(batches=list(BATCHES), warmup_passes=WARMUP, min_time_per_batch_s=common_spec["min_time"])
    ratios = speed_ratios(runs)
    run.finish(config, {"runs": runs, "ratios": ratios}, tables(runs, ratios))


if __name__ == "__main__":
    main()
