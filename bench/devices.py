"""Detection and embedding on each device onnxruntime offers here: the CPU (one thread, and every
core) and CUDA when there is one.

Reported: MTCNN detection in ms per LFW photo (median over the photos, after a warm-up pass), whether
the GPU finds the same faces (boxes and landmarks within a pixel of the CPU's); detection in photos/s
when several photos are detected in one call (``detect_many``, as the service's detection batches do),
on LFW as it is (every photo 250x250) and on the same photos at mixed sizes (as uploads come), with
P-Net on its own sizes or on canvases (fixed shapes; the default on CUDA); and the embedding's faces/s
per batch size, with the largest difference between a face embedded in a batch and alone, and between
the devices.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import common
import numpy as np
from PIL import Image

from facever.model.detection import DetectorConfig, FaceDetector
from facever.model.embedding import Embedder
from facever.model.face_choice import choose_face
from facever.model.images import decode_image
from facever.model.onnx_session import GPU_PROVIDER
from facever.model.runtime import FacePipeline, detector_config_for
from facever.training.evaluation.lfw import LFW

GPU_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CPU_BATCHES = (1, 8, 32)
DETECTION_BATCHES = (1, 2, 8, 32)


def photos(data, n: int) -> list[np.ndarray]:
    lfw = LFW(data)
    names = sorted({name for pair in lfw.pairs() for name in (pair.first, pair.second)})
    rng = np.random.default_rng(0)
    chosen = [names[i] for i in sorted(rng.choice(len(names), size=min(n, len(names)), replace=False))]
    return [decode_image(lfw.path(name).read_bytes()) for name in chosen]


def time_detection(detector: FaceDetector, images: list[np.ndarray]) -> tuple[float, list]:
    for image in images[:5]:
        detector.detect(image)
    seconds, faces = [], []
    for image in images:
        start = time.perf_counter()
        faces.append(detector.detect(image))
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds) * 1000), faces


def mixed_sizes(images: list[np.ndarray]) -> list[np.ndarray]:
    """The photos each enlarged by its own factor (0.8 to 3.2): the sizes uploads come in."""
    rng = np.random.default_rng(1)
    resized = []
    for image in images:
        factor = rng.uniform(0.8, 3.2)
        height, width = image.shape[:2]
        size = (max(24, round(width * factor)), max(24, round(height * factor * rng.uniform(0.75, 1.0))))
        resized.append(np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)))
    return resized


def time_detection_batches(
    detector: FaceDetector, images: list[np.ndarray], batches: tuple[int, ...], budget_s: float
) -> tuple[dict[str, float], list]:
    """Photos/s at ``batch`` photos a ``detect_many`` call (the photos in turn, at least one pass
    over them), and the faces of the last batch size's pass."""
    rates, faces = {}, []
    for batch in batches:
        chunks = [images[i : i + batch] for i in range(0, len(images), batch)]
        for chunk in chunks:  # warm-up: on CUDA the first run of every shape costs a plan
            detector.detect_many(chunk)
        done, start = 0, time.perf_counter()
        faces = []
        for turn, chunk in enumerate(itertools.cycle(chunks)):
            found = detector.detect_many(chunk)
            if turn < len(chunks):
                faces += found
            done += len(chunk)
            if turn + 1 >= len(chunks) and time.perf_counter() - start >= budget_s:
                break
        rates[str(batch)] = done / (time.perf_counter() - start)
    return rates, faces


def profile_networks(device: str, repeats: int) -> dict:
    """Where MTCNN's time goes on ``device``: each network alone through onnxruntime's profiler, on the
    shapes a 250x250 photo gives (P-Net at every pyramid level of its 256 canvas, 1 and 8 photos a
    run; R-Net on 32 candidates, O-Net on 8), with the detector's convolution search: wall ms (median;
    P-Net: all levels), the node kinds by kernel time, and the nodes that ran on another provider."""
    import onnxruntime

    from facever.model import detection

    providers = [GPU_PROVIDER, "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    options: list = [(GPU_PROVIDER, detection.CUDA_OPTIONS), providers[1]] if device == "cuda" else providers
    sides = pnet_canvas_sides(DetectorConfig(), 256)
    workloads = {
        "pnet": {
            batch: [
                {
                    "input_1": np.zeros((batch, side, side, 3), np.float32),
                    "mask": np.zeros((batch, 1, side - 2, side - 2), np.float32),
                }
                for side in sides
            ]
            for batch in (1, 8)
        },
        "rnet": {32: [{"input_2": np.zeros((32, 24, 24, 3), np.float32)}]},
        "onet": {8: [{"input_3": np.zeros((8, 48, 48, 3), np.float32)}]},
    }
    report = {}
    for name, groups in workloads.items():
        session_options = onnxruntime.SessionOptions()
        session_options.enable_profiling = True
        # onnxruntime writes the profile where it is told, the working directory by default
        folder = tempfile.TemporaryDirectory()
        session_options.profile_file_prefix = str(Path(folder.name) / name)
        model = detection.mtcnn_graph(name, split_prelu=device != "cuda", mask=name == "pnet")
        session = onnxruntime.InferenceSession(model, session_options, providers=options)
        walls: dict[int, list[float]] = {batch: [] for batch in groups}
        for round_ in range(repeats + 2):  # the first two rounds pay for each shape's first runs
            for batch, feeds in groups.items():
                start = time.perf_counter()
                for feed in feeds:
                    session.run(None, feed)
                if round_ >= 2:
                    walls[batch].append(time.perf_counter() - start)
        kinds: dict[str, float] = {}
        elsewhere = set()
        with folder:
            events = json.loads(Path(session.end_profiling()).read_text())
        for event in events:
            if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
                continue
            kind, provider = event["args"].get("op_name", "?"), event["args"].get("provider", "")
            kinds[kind] = kinds.get(kind, 0.0) + event["dur"]
            if provider and provider != providers[0]:
                elsewhere.add(f"{kind} on {provider}")
        total = sum(kinds.values()) or 1.0
        what = f"{len(sides)} levels, " if name == "pnet" else ""
        report[name] = {
            "ms": {
                f"{what}{batch} a run": float(np.median(values) * 1000) for batch, values in walls.items()
            },
            "kernel_time_share": {
                kind: round(time_us / total, 3)
                for kind, time_us in sorted(kinds.items(), key=lambda kv: -kv[1])[:6]
            },
            "nodes_not_on_device": sorted(elsewhere),
        }
    return report


def pnet_canvas_sides(config: DetectorConfig, canvas: int) -> list[int]:
    """The sides of P-Net's input at each pyramid level of a ``canvas`` square."""
    sides, scale = [], 12.0 / config.min_face_size
    while canvas * scale >= 12:
        sides.append(int(np.ceil(canvas * scale)))
        scale *= config.scale_factor
    return sides


def compare_faces(reference: list, other: list) -> dict:
    """Largest box and landmark differences (pixels) between two runs over the same photos."""
    box_diff, point_diff, count_differs = 0.0, 0.0, 0
    for first, second in zip(reference, other, strict=True):
        if len(first) != len(second):
            count_differs += 1
            continue
        for a, b in zip(first, second, strict=True):
            box_diff = max(box_diff, float(np.abs(np.subtract(a.box, b.box)).max()))
            point_diff = max(point_diff, float(np.abs(a.landmarks - b.landmarks).max()))
    return {
        "photos_with_other_face_count": count_differs,
        "max_box_px": box_diff,
        "max_landmark_px": point_diff,
    }


def time_embedding(embedder: Embedder, crops: np.ndarray, batch: int, budget_s: float) -> float:
    """Faces per second at ``batch`` faces a run."""
    chunk = crops[:batch] if len(crops) >= batch else np.resize(crops, (batch, *crops.shape[1:]))
    embedder.embed(chunk)  # first run of this size
    runs, start = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < budget_s:
        embedder.embed(chunk)
        runs += 1
    return runs * batch / (time.perf_counter() - start)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "devices")
    parser.add_argument("--photos", type=int, help="LFW photos (default 200; smoke 6)")
    args = parser.parse_args()
    run = common.Run("devices", args)
    images = photos(args.data, args.photos or (6 if args.smoke else 200))
    cores = len(os.sched_getaffinity(0))
    import onnxruntime

    has_gpu = GPU_PROVIDER in onnxruntime.get_available_providers()
    budget = 0.05 if args.smoke else 1.0

    detection: dict[str, dict] = {}
    faces_by_device = {}
    for name, device, threads in [("cpu, 1 thread", "cpu", 1), (f"cpu, {cores} threads", "cpu", 0)] + (
        [("cuda", "cuda", 0)] if has_gpu else []
    ):
        detector = FaceDetector(DetectorConfig(), device, threads)
        ms, faces = time_detection(detector, images)
        detection[name] = {"ms_per_photo": ms, "providers": detector.providers}
        faces_by_device[name] = faces
        print(f"devices: detection {name}: {ms:.2f} ms a photo", flush=True)
    reference = faces_by_device["cpu, 1 thread"]
    for name, faces in faces_by_device.items():
        detection[name]["same_faces_as_cpu"] = compare_faces(reference, faces)

    # Several photos a call: on LFW as it is and at mixed sizes, P-Net on own sizes or canvases; on
    # the first 64 photos (each batch size takes at least two passes over them, on every setting).
    some = images[:64]
    photo_sets = {"LFW": some, "mixed sizes": mixed_sizes(some)}
    alone_mixed = [
        FaceDetector(DetectorConfig(), "cpu", 1).detect(image) for image in photo_sets["mixed sizes"]
    ]
    batched: dict[str, dict] = {}
    settings = [("cpu, 1 thread", "cpu", 1, ()), ("cpu, 1 thread, canvas", "cpu", 1, None)]
    if has_gpu:
        settings += [("cuda, canvas", "cuda", 0, None), ("cuda, own sizes", "cuda", 0, ())]
    for name, device, threads, canvas in settings:
        config = detector_config_for(DetectorConfig(), "cuda") if canvas is None else DetectorConfig()
        detector = FaceDetector(config, device, threads)
        for set_name, photo_set in photo_sets.items():
            rates, faces = time_detection_batches(detector, photo_set, DETECTION_BATCHES, budget)
            expected = reference[: len(some)] if set_name == "LFW" else alone_mixed
            batched[f"{name}; {set_name}"] = {
                "device": name,
                "photos": set_name,
                "photos_per_s": rates,
                "canvas": list(config.canvas),
                "same_faces_as_cpu_alone": compare_faces(expected, faces),
            }
            print(f"devices: detection batches {name}, {set_name}: {rates}", flush=True)

    profiles = {
        device: profile_networks(device, 3 if args.smoke else 20)
        for device in ["cpu"] + (["cuda"] if has_gpu else [])
    }
    print(f"devices: MTCNN's networks alone: {profiles}", flush=True)

    # Aligned crops of the faces found, as the service makes them.
    pipeline = FacePipeline(args.model, "cpu", 1, detection_device="cpu")
    crops = np.stack(
        [
            pipeline.crop(image, choose_face(faces))
            for image, faces in zip(images, reference, strict=True)
            if faces
        ]
    )
    embedding: dict[str, dict] = {}
    alone_cpu = pipeline.embed(crops[:16])
    for name, device, threads, batches in [
        ("cpu, 1 thread", "cpu", 1, CPU_BATCHES),
        (f"cpu, {cores} threads", "cpu", 0, CPU_BATCHES),
    ] + ([("cuda", "cuda", 0, GPU_BATCHES)] if has_gpu else []):
        embedder = Embedder(args.model, device, threads)
        rates = {str(batch): time_embedding(embedder, crops, batch, budget) for batch in batches}
        alone = np.concatenate([embedder.embed(crop[None]) for crop in crops[:16]])
        together = embedder.embed(crops[:16])
        embedding[name] = {
            "faces_per_s": rates,
            "providers": embedder.providers,
            "max_diff_batched_vs_alone": float(np.abs(together - alone).max()),
            "max_diff_vs_cpu": float(np.abs(alone - alone_cpu).max()),
        }
        print(f"devices: embedding {name}: {rates}", flush=True)

    fmt = common.fmt
    detection_rows = [
        [
            name,
            fmt(row["ms_per_photo"], 2),
            row["same_faces_as_cpu"]["photos_with_other_face_count"],
            fmt(row["same_faces_as_cpu"]["max_box_px"], 3),
            fmt(row["same_faces_as_cpu"]["max_landmark_px"], 3),
        ]
        for name, row in detection.items()
    ]
    batches = sorted({int(b) for row in embedding.values() for b in row["faces_per_s"]})
    embedding_rows = [
        [
            name,
            *(fmt(row["faces_per_s"].get(str(b)), 0) for b in batches),
            f"{row['max_diff_batched_vs_alone']:.1e}",
        ]
        for name, row in embedding.items()
    ]
    tables = {
        f"MTCNN detection per device ({len(images)} LFW photos, median)": common.markdown_table(
            [
                "device",
                "ms a photo",
                "photos with another face count",
                "max box diff px",
                "max landmark diff px",
            ],
            detection_rows,
        ),
        f"MTCNN detection, photos/s by photos a call ({len(some)} LFW photos, as they are and at mixed "
        "sizes; canvas: P-Net on fixed shapes)": common.markdown_table(
            [
                "device",
                "photos",
                *(f"{b} a call" for b in DETECTION_BATCHES),
                "canvas",
                "photos with another face count vs 1 CPU photo at a time",
                "max box / landmark diff px",
            ],
            [
                [
                    row["device"],
                    row["photos"],
                    *(fmt(row["photos_per_s"].get(str(b)), 1) for b in DETECTION_BATCHES),
                    ", ".join(map(str, row["canvas"])) or "-",
                    row["same_faces_as_cpu_alone"]["photos_with_other_face_count"],
                    f"{row['same_faces_as_cpu_alone']['max_box_px']:.3f} / "
                    f"{row['same_faces_as_cpu_alone']['max_landmark_px']:.3f}",
                ]
                for row in batched.values()
            ],
        ),
        "MTCNN's networks alone, as a 250x250 photo runs them (onnxruntime's profiler; CPU: all cores)": (
            common.markdown_table(
                ["device", "network", "ms (median)", "kernel time by node kind", "nodes on another provider"],
                [
                    [
                        device,
                        network,
                        "; ".join(f"{what}: {ms:.2f}" for what, ms in row["ms"].items()),
                        ", ".join(f"{kind} {share:.0%}" for kind, share in row["kernel_time_share"].items()),
                        ", ".join(row["nodes_not_on_device"]) or "none",
                    ]
                    for device, networks in profiles.items()
                    for network, row in networks.items()
                ],
            )
        ),
        f"Embedding faces/s per batch size ({len(crops)} LFW faces)": common.markdown_table(
            ["device", *(f"batch {b}" for b in batches), "batched vs alone, max diff"], embedding_rows
        ),
    }
    run.finish(
        {"photos": len(images), "faces": len(crops), "model": common.model_info(args.model)},
        {
            "detection": detection,
            "detection_batches": batched,
            "network_profiles": profiles,
            "embedding": embedding,
        },
        tables,
    )


if __name__ == "__main__":
    main()
