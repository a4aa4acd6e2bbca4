"""Where one core's time goes in a whole image (issue 16: a whole image >= 10x faster than dlib's
pipeline): the median milliseconds of each stage of detection, the chip and the embedding, split into
the networks' own runs (onnxruntime) and everything around them (Pillow, numpy, Python), on the LFW
images bench/speed.py times, one core, one thread.

The stages are timed by wrapping the detector's and the embedder's methods and sessions in this
process (a few microseconds each); the whole image is timed as bench/speed.py times it (choose the
face, cut its views, embed them). Also counted: how many candidate crops R-Net and O-Net see a photo.
The networks' share is the floor that no work around them can lower.

``--between`` sets what the core does before each photo: nothing (photos back to back, as a busy
service takes them), a 100 ms pause, or dlib's whole pipeline on the same photo (as bench/speed.py
takes turns). What a photo costs after a pause or after dlib, against back to back, is the time the
machine needs to bring facever's code and weights back into its caches.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import common
import numpy as np
from speed import one_core_photos

import facever.model.detection as detection

PASSES = 3  # timed passes over the images; each stage's time is its median over images and passes
PAUSE_S = 0.1  # --between pause: about what dlib's pipeline takes for a photo
BETWEEN = ("nothing", "pause", "dlib")


class Stopwatch:
    """Seconds spent in wrapped callables during the current image, by name; calls counted too."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: object, attribute: str, name: str) -> None:
        inner: Callable = getattr(owner, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        setattr(owner, attribute, timed)

    def take(self) -> tuple[dict[str, float], dict[str, int]]:
        seconds, calls = dict(self.seconds), dict(self.calls)
        self.seconds.clear()
        self.calls.clear()
        return seconds, calls


def crops_seen(session, watch: Stopwatch, name: str) -> None:
    """Count the rows (candidate crops) each run of ``session`` gets, under ``name`` in ``watch.calls``."""
    inner = session.run

    def counted(output_names, feed, *args, **kwargs):
        watch.calls[name] += len(next(iter(feed.values())))
        return inner(output_names, feed, *args, **kwargs)

    session.run = counted


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "stages")
    parser.add_argument("--images", type=int, help="LFW images (default 200, as bench/speed.py; smoke 4)")
    parser.add_argument(
        "--between", choices=BETWEEN, default="nothing", help="what runs before each photo (nothing)"
    )
    args = parser.parse_args()
    images, pipeline = one_core_photos(args, args.images or (4 if args.smoke else 200))
    run = common.Run("stages", args)
    detector = pipeline.detector

    watch = Stopwatch()
    crops_seen(detector._rnet, watch, "R-Net crops")
    crops_seen(detector._onet, watch, "O-Net crops")
    for owner, attribute, name in (
        (detector._pnet_session, "run", "P-Net network"),
        (detector._rnet, "run", "R-Net network"),
        (detector._onet, "run", "O-Net network"),
        (detector, "_working_copy", "working copy"),
        (detection, "_equalized", "equalised copy"),
        (detector, "_propose", "P-Net stage"),
        (detector, "_refine", "R-Net stage"),
        (detector, "_output", "O-Net stage"),
        (pipeline.embedder.session, "run", "embedding network"),
    ):
        watch.wrap(owner, attribute, name)

    def whole(image: np.ndarray) -> float:
        start = time.perf_counter()
        face = pipeline.choose(image)
        views = pipeline.views(image, face)
        chosen = time.perf_counter()
        pipeline.embed(views[None])
        done = time.perf_counter()
        watch.seconds["detection + chip"] += chosen - start
        watch.seconds["embedding"] += done - chosen
        return done - start

    between = before_each_photo(args.between)
    whole(images[0])  # warm-up
    watch.take()
    per_image: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, list[int]] = defaultdict(list)
    for _ in range(PASSES):
        for image in images:
            between(image)
            total = whole(image)
            seconds, calls = watch.take()
            # The session wrappers time each network alone; the stage wrappers all of its stage.
            for stage, network in (
                ("P-Net", "P-Net network"),
                ("R-Net", "R-Net network"),
                ("O-Net", "O-Net network"),
            ):
                seconds[f"{stage} around the network"] = seconds.pop(f"{stage} stage", 0.0) - seconds[network]
            seconds["chip (views)"] = (
                seconds["detection + chip"]
                - sum(seconds[s] for s in seconds if s.startswith(("P-Net", "R-Net", "O-Net")))
                - seconds["working copy"]
                - seconds["equalised copy"]
            )
            seconds["embedding around the network"] = seconds["embedding"] - seconds["embedding network"]
            seconds["whole image"] = total
            for stage, value in seconds.items():
                per_image[stage].append(value)
            for name in ("R-Net crops", "O-Net crops"):
                counts[name].append(calls.get(name, 0))

    order = [
        "working copy",
        "equalised copy",
        "P-Net network",
        "P-Net around the network",
        "R-Net network",
        "R-Net around the network",
        "O-Net network",
        "O-Net around the network",
        "chip (views)",
        "embedding network",
        "embedding around the network",
        "whole image",
    ]
    stats = {stage: common.latency_stats(per_image[stage]) for stage in order}
    medians = {stage: stats[stage]["median_ms"] for stage in order}
    networks = sum(medians[f"{net} network"] for net in ("P-Net", "R-Net", "O-Net", "embedding"))
    mean_total = float(np.mean(per_image["whole image"])) * 1000
    rows = [
        [
            stage,
            f"{medians[stage]:.2f}",
            f"{1000 * np.mean(per_image[stage]):.2f}",
            f"{100 * 1000 * np.mean(per_image[stage]) / mean_total:.0f} %",
        ]
        for stage in order
    ]
    rows.append(["the four networks together (sum of medians)", f"{networks:.2f}", "", ""])
    results = {
        "images": len(images),
        "passes": PASSES,
        "stages": stats,
        "networks_ms": networks,
        "candidate_crops_per_image": {name: float(np.mean(c)) for name, c in counts.items()},
    }
    crops = ", ".join(f"{name} {np.mean(c):.1f}" for name, c in counts.items())
    before = {
        "nothing": "back to back",
        "pause": f"{PAUSE_S * 1000:.0f} ms pause before each",
        "dlib": "dlib's pipeline before each",
    }
    title = f"One core, {len(images)} LFW images x {PASSES}, {before[args.between]}"
    tables = {
        f"{title}: milliseconds a photo ({crops} a photo)": common.markdown_table(
            ["stage", "median ms", "mean ms", "share of the mean whole image"], rows
        )
    }
    config = {"model": common.model_info(args.model), "images": len(images), "between": args.between}
    run.finish(config, results, tables)


def before_each_photo(between: str) -> Callable[[np.ndarray], object]:
    if between == "pause":
        return lambda image: time.sleep(PAUSE_S)
    if between == "dlib":
        from speed import DlibEngine

        return DlibEngine().run
    return lambda image: None


if __name__ == "__main__":
    main()
