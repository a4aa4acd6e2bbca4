"""Per-face speed of facever and dlib on the same LFW images: detection + alignment, embedding and the
whole image timed separately (median, p95), on one core and on all cores, with the ratio dlib ÷
facever; facever's embedding also in batches of 1, 8, 32 and 128 faces; and the cost of facever's
second detection pass. When onnxruntime has the CUDA provider, facever is measured on the GPU as well.

Each setting runs in its own worker process, started with its thread settings in place: one core
is ``taskset -c <cpu>`` (or sched_setaffinity), OMP/OpenBLAS/MKL threads 1 and onnxruntime
intra-op threads 1; all cores is every default. Within a worker, both engines take each image in
turn (alternating which goes first), so drift in the machine's speed hits both alike.

What is timed, on the decoded RGB image (decoding is not timed: the same for both): facever: MTCNN
detection (with its second pass when the first finds nothing) + the aligned crop of the card's size;
then the ONNX embedding of that one crop. dlib (face_recognition's recipe): HOG detection (upsampled
once) + 5-point landmarks + the 150-px face chip; then the ResNet descriptor of that chip. As in the
service, an image where an engine finds no face is not embedded: it counts as "no face", its
detection time is kept, and its embedding and whole-image times are left out.

The second pass: the LFW images and a sample of CFP profile photos (few of them need it, hence 400)
are detected by facever's detector and by the same detector with the second pass turned off
(``retry_margin=0``), which tells the images the first pass finds a face in from those that need the
second. The difference of the two times on an image that needs it is what the second pass costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import common
import numpy as np

from facever.model.images import ImageError

if TYPE_CHECKING:
    from facever.model.runtime import FacePipeline

BATCHES = (1, 8, 32, 128)
WARMUP = 3  # untimed passes over the first image per engine
# Issue 16: a whole image (detection, landmarks, chip, network) on one core this many times faster than dlib.
GOAL = 10.0
DEFAULT_CFP = common.REPO.parent / "shared" / "data" / "cfp"
PASS_GROUPS = ("first pass", "second pass", "no face")


# -- the worker: one setting (device, threads), both engines -------------------------------------


def worker(spec: dict) -> dict:
    if spec["threads"] == 1 and len(os.sched_getaffinity(0)) > 1:  # taskset was not available
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from facever.model.images import read_image
    from facever.model.onnx_session import GPU_PROVIDER
    from facever.model.runtime import FacePipeline
    from facever.training.evaluation.cfp import CFP
    from facever.training.evaluation.lfw import LFW

    lfw, cfp = LFW(Path(spec["data"])), CFP(Path(spec["cfp"]))
    images = [read_image(lfw.path(key)) for key in spec["keys"]]
    profiles = [read_image(cfp.path(key)) for key in spec["cfp_keys"]]
    pipeline = FacePipeline(spec["model"], spec["device"], spec["threads"])
    if spec["device"] == "cuda" and pipeline.providers[0] != GPU_PROVIDER:
        raise SystemExit(f"CUDA was asked for but the embedding runs on {pipeline.providers}")
    engines = {"facever": FaceverEngine(pipeline)}
    if "dlib" in spec["engines"]:
        engines["dlib"] = DlibEngine()

    for engine in engines.values():
        for _ in range(WARMUP):
            engine.run(images[0])
    times = {name: {"detect_align": [], "embed": [], "total": [], "no_face": 0} for name in engines}
    crops = []
    for i, image in enumerate(images):
        order = list(engines) if i % 2 == 0 else list(reversed(engines))
        for name in order:
            detect_align, embed = engines[name].run(image)
            times[name]["detect_align"].append(detect_align)
            if embed is None:
                times[name]["no_face"] += 1
            else:
                times[name]["embed"].append(embed)
                times[name]["total"].append(detect_align + embed)
        if engines["facever"].last_crop is not None:
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
                "total": common.latency_stats(t["total"]),
                "faces_found": len(images) - t["no_face"],
                "no_face": t["no_face"],
            }
            for name, t in times.items()
        },
        "batch": batch_throughput(pipeline, crops, spec["batches"], spec["min_time"]),
        "detector_passes": detector_passes(pipeline, spec, {"LFW": images, "CFP profile": profiles}),
    }


class FaceverEngine:
    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.last_crop: np.ndarray | None = None

    def run(self, image: np.ndarray) -> tuple[float, float | None]:
        """Seconds of detection + alignment, and of the embedding (None: no face, not embedded)."""
        self.last_crop = None
        start = time.perf_counter()
        try:
            face = self.pipeline.choose(image)
        except ImageError:
            return time.perf_counter() - start, None
        views = self.pipeline.views(image, face)  # what the service embeds: every view of the card
        aligned = time.perf_counter()
        self.pipeline.embed(views[None])
        done = time.perf_counter()
        self.last_crop = views
        return aligned - start, done - aligned


class DlibEngine:
    def __init__(self):
        import dlib

        from facever.training.teacher import RECIPE, DlibPeer

        self.dlib, self.peer, self.jitters = dlib, DlibPeer(), RECIPE["jitters"]

    def run(self, rgb: np.ndarray) -> tuple[float, float | None]:
        start = time.perf_counter()
        rects = self.peer.detect(rgb)
        if not rects:
            return time.perf_counter() - start, None
        shape = self.peer.shapes(rgb, rects[0])
        chip = self.dlib.get_face_chip(rgb, shape, 150, 0.25)  # what compute_face_descriptor(rgb, shape) does
        aligned = time.perf_counter()
        self.peer.encoder.compute_face_descriptor(chip, self.jitters)
        done = time.perf_counter()
        return aligned - start, done - aligned


def batch_throughput(pipeline, crops: list[np.ndarray], sizes: list[int], min_time: float) -> dict:
    """Faces per second of the embedding network alone, per batch size (real aligned crops)."""
    if not crops:
        return {}
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


def detector_passes(pipeline, spec: dict, sources: dict[str, list[np.ndarray]]) -> dict:
    """``detect`` on each image with the second pass and without it, grouped by which pass found a face."""
    from facever.model.detection import FaceDetector

    config = pipeline.detector.config
    first_only = FaceDetector(dataclasses.replace(config, retry_margin=0), spec["device"], spec["threads"])
    detectors = {"both": pipeline.detector, "first": first_only}
    for detector in detectors.values():
        detector.detect(next(image for images in sources.values() for image in images))
    result = {"retry_margin": config.retry_margin, "sources": {}}
    for source, images in sources.items():
        groups = {group: {"both": [], "first": []} for group in PASS_GROUPS}
        for i, image in enumerate(images):
            found, seconds = {}, {}
            for name in list(detectors) if i % 2 == 0 else list(reversed(detectors)):
                start = time.perf_counter()
                found[name] = bool(detectors[name].detect(image))
                seconds[name] = time.perf_counter() - start
            group = "first pass" if found["first"] else "second pass" if found["both"] else "no face"
            for name in detectors:
                groups[group][name].append(seconds[name])
        result["sources"][source] = {
            group: {
                "images": len(t["both"]),
                "detect": common.latency_stats(t["both"]),
                "first_pass_only": common.latency_stats(t["first"]),
                # on the same image: what running the second pass adds
                "extra": common.latency_stats(np.subtract(t["both"], t["first"])),
            }
            for group, t in groups.items()
        }
    return result


# -- the parent: one worker per setting, then the tables -----------------------------------------


def sample_keys(data: Path, n: int) -> list[str]:
    """n images of the LFW pairs, the same every run."""
    from facever.training.evaluation.lfw import LFW

    keys = sorted({k for p in LFW(data).pairs() for k in (p.first, p.second)})
    return sorted(np.random.default_rng(0).choice(keys, size=n, replace=False).tolist())


def one_core_photos(args: argparse.Namespace, count: int) -> tuple[list[np.ndarray], FacePipeline]:
    """For the scripts that time facever on one core: this process pinned to one core, ``count`` of the
    LFW photos bench/speed.py times (``args.data``), and facever's pipeline (``args.model``) on one thread."""
    from facever.model.images import read_image
    from facever.model.runtime import FacePipeline
    from facever.training.evaluation.lfw import LFW

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    lfw = LFW(args.data)
    images = [read_image(lfw.path(key)) for key in sample_keys(args.data, count)]
    return images, FacePipeline(args.model, "cpu", 1, detection_device="cpu")


def sample_profiles(root: Path, n: int) -> list[str]:
    """n CFP profile photos, the same every run."""
    from facever.training.evaluation.cfp import CFP

    if not (root / "Protocol" / "Pair_list_P.txt").exists():
        raise SystemExit(f"CFP is expected at {root} (--cfp): the second detection pass is timed on it")
    keys = sorted(CFP(root).image_list("P").values())
    return sorted(np.random.default_rng(0).choice(keys, size=min(n, len(keys)), replace=False).tolist())


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
    """dlib's median ÷ facever's, per setting; facever on the GPU is set against dlib on all cores.
    None where an engine has no time (no face found in any image)."""
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
            both = dlib[part].get("median_ms"), facever[part].get("median_ms")
            ratio[part] = both[0] / both[1] if None not in both else None
        ratios.append(ratio)
    return ratios


def goal_one_core(runs: list[dict]) -> dict | None:
    """The goal's figure: a whole image on one core (detection, landmarks, chip and network; issue 16),
    dlib's median ÷ facever's, same run; the network alone beside it."""
    run = next((r for r in runs if r["device"] == "cpu" and r["threads"] == 1), None)
    if run is None or "dlib" not in run["engines"]:
        return None
    result: dict = {"setting": run["label"], "bar": GOAL}
    for part in ("total", "embed"):
        facever, dlib = (run["engines"][name][part].get("median_ms") for name in ("facever", "dlib"))
        result[part] = {
            "facever_median_ms": facever,
            "dlib_median_ms": dlib,
            "ratio": dlib / facever if facever and dlib else None,
        }
    ratio = result["total"]["ratio"]
    result["met"] = ratio is not None and ratio >= GOAL
    return result


def tables(runs: list[dict], ratios: list[dict], goal: dict | None) -> dict[str, str]:
    fmt = common.fmt

    def median_p95(stats: dict, digits: int = 1) -> str:
        return f"{fmt(stats.get('median_ms'), digits)} / {fmt(stats.get('p95_ms'), digits)}"

    per_image = [
        [
            name,
            run["label"],
            median_p95(e["detect_align"]),
            median_p95(e["embed"], 2),
            median_p95(e["total"]),
            f"{e['no_face']} / {run['images']}",
        ]
        for run in runs
        for name, e in run["engines"].items()
    ]
    ratio_rows = [
        [
            r["facever"] if r["facever"] == r["dlib"] else f"facever {r['facever']} vs dlib {r['dlib']}",
            *("—" if r[part] is None else f"{r[part]:.1f}×" for part in ("detect_align", "embed", "total")),
        ]
        for r in ratios
    ]
    sizes = list(next((run["batch"] for run in runs if run["batch"]), {}))
    batch = [
        [run["label"]] + [fmt(run["batch"][s]["faces_per_s"], 0) if s in run["batch"] else "—" for s in sizes]
        for run in runs
    ]
    passes = [
        [
            run["label"],
            source,
            group,
            g["images"],
            median_p95(g["detect"]),
            fmt(g["first_pass_only"].get("median_ms")),
            fmt(g["extra"].get("median_ms")) if group != "first pass" else "—",
        ]
        for run in runs
        for source, groups in run["detector_passes"]["sources"].items()
        for group, g in groups.items()
        if g["images"]
    ]
    result = {}
    if goal:
        times = lambda part: [  # noqa: E731
            fmt(goal[part]["facever_median_ms"], 2),
            fmt(goal[part]["dlib_median_ms"], 2),
            "—" if goal[part]["ratio"] is None else f"{goal[part]['ratio']:.1f}×",
        ]
        title = f"A whole image on one core (goal: dlib ÷ facever ≥ {GOAL:.0f}×; issue 16)"
        result[title] = common.markdown_table(
            [
                "setting",
                "whole image: facever ms (median)",
                "dlib ms",
                "dlib ÷ facever",
                "goal met",
                "network alone: facever ms",
                "dlib ms",
                "dlib ÷ facever",
            ],
            [[goal["setting"], *times("total"), "yes" if goal["met"] else "no", *times("embed")]],
        )
    result["Per image, milliseconds (median / p95); embedding and whole image on found faces only"] = (
        common.markdown_table(
            ["engine", "setting", "detection + alignment", "embedding", "whole image", "no face"], per_image
        )
    )
    if ratio_rows:
        result["How many times faster facever is (dlib ÷ facever, medians)"] = common.markdown_table(
            ["setting", "detection + alignment", "embedding", "whole image"], ratio_rows
        )
    if sizes:
        result["facever embedding throughput, faces/s by batch size"] = common.markdown_table(
            ["setting", *(f"batch {s}" for s in sizes)], batch
        )
    result["facever detection by the pass that finds the face, milliseconds"] = common.markdown_table(
        [
            "setting",
            "source",
            "face found by",
            "images",
            "detect (median / p95)",
            "first pass alone (median)",
            "second pass adds (median)",
        ],
        passes,
    )
    return result


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "speed")
    parser.add_argument("--images", type=int, help="LFW images timed per setting (default 200; smoke 4)")
    parser.add_argument("--cfp", type=Path, default=DEFAULT_CFP, help="CFP folder (Data/, Protocol/)")
    parser.add_argument("--cfp-images", type=int, help="CFP profile photos detected (default 400; smoke 6)")
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
    cfp_keys = sample_profiles(args.cfp, args.cfp_images or (6 if args.smoke else 400))
    common_spec = {
        "keys": keys,
        "data": str(args.data),
        "cfp_keys": cfp_keys,
        "cfp": str(args.cfp),
        "model": str(args.model),
        "batches": list(BATCHES),
        "min_time": 0.05 if args.smoke else 2.0,
    }
    chosen = settings(engines, args.require_cuda)
    with tempfile.TemporaryDirectory() as workdir:
        runs = [run_worker({**spec, **common_spec}, Path(workdir)) for spec in chosen]
    config = {"model": common.model_info(args.model), "images": len(keys), "engines": engines}
    config.update(cfp=str(args.cfp), cfp_profile_images=len(cfp_keys))
    config.update(batches=list(BATCHES), warmup_passes=WARMUP, min_time_per_batch_s=common_spec["min_time"])
    ratios = speed_ratios(runs)
    goal = goal_one_core(runs)
    results = {"runs": runs, "ratios": ratios, "goal_one_core": goal}
    run.finish(config, results, tables(runs, ratios, goal))


if __name__ == "__main__":
    main()
