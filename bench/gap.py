"""What a gap before work costs on this host: the first call after the core spent 0, 1, 10 or 100 ms
elsewhere, against the same call back to back, for a trivial onnxruntime run (one Relu on a 13x13x3
tensor), a numpy add of that tensor, and facever's whole photo (detection, chip,
embedding, as bench/speed.py times it), one core, one thread.

The gap is a Python busy loop (it keeps the core and touches almost no memory) or a sleep. On hosts
where the core's caches and address translations go cold within such a gap (a virtual machine whose
host runs other work on the core), the first call pays for bringing code and data back: that cost is
the host's, not facever's, and bench/speed.py, which runs facever right after ~100 ms of dlib, pays it
for every photo. Run this first on a new host to know how much of facever's time is the gap's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import common
import numpy as np
import onnx
from onnx import TensorProto, helper
from speed import one_core_photos

from facever.model.onnx_session import create_session

GAPS_MS = (0, 1, 10, 100)


def busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def trivial_session():
    tensor = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [tensor("x", TensorProto.FLOAT, [1, 3, 13, 13])],
        [tensor("y", TensorProto.FLOAT, [1, 3, 13, 13])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return create_session(model.SerializeToString(), "cpu", threads=1)


def after_gap(call: Callable[[int], object], gap: Callable[[float], None], ms: float, repeats: int) -> float:
    """Median microseconds of ``call`` right after ``gap(ms)``, over ``repeats`` rounds."""
    seconds = []
    for round_ in range(repeats):
        gap(ms)
        start = time.perf_counter()
        call(round_)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)) * 1e6


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "gap")
    parser.add_argument("--images", type=int, help="LFW images for the whole photo (default 50; smoke 2)")
    args = parser.parse_args()
    images, pipeline = one_core_photos(args, args.images or (2 if args.smoke else 50))
    run = common.Run("gap", args)
    session = trivial_session()
    tensor = np.random.default_rng(0).random((1, 3, 13, 13), dtype=np.float32)

    def photo(round_: int) -> None:
        image = images[round_ % len(images)]
        pipeline.embed(pipeline.views(image, pipeline.choose(image))[None])

    calls = {
        "onnxruntime run (one Relu)": lambda _: session.run(None, {"x": tensor}),
        "numpy add": lambda _: np.add(tensor, tensor),
        "facever whole photo": photo,
    }
    for round_ in range(3):  # warm-up
        for call in calls.values():
            call(round_)
    repeats = 3 if args.smoke else max(100, 2 * len(images))
    gaps = {"busy loop": busy, "sleep": lambda ms: time.sleep(ms / 1000)}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for gap_name, gap in gaps.items():
        results[gap_name] = {}
        for ms in GAPS_MS if not args.smoke else (0, 1):
            results[gap_name][str(ms)] = {
                name: after_gap(call, gap, ms, repeats) for name, call in calls.items()
            }

    headers = ["gap", *(f"{ms} ms" for ms in results["busy loop"])]
    rows = []
    for name in calls:
        for gap_name, by_ms in results.items():
            back_to_back = results["busy loop"]["0"][name]
            cells = [
                f"{by_ms[ms][name]:.1f} µs ({by_ms[ms][name] / back_to_back:.1f}×)"
                if name != "facever whole photo"
                else f"{by_ms[ms][name] / 1000:.2f} ms ({by_ms[ms][name] / back_to_back:.2f}×)"
                for ms in by_ms
            ]
            rows.append([f"{name}, after a {gap_name}", *cells])
    title = (
        f"A call right after a gap, one core (median of {repeats}; in brackets: against 0 ms, the call back "
        "to back)"
    )
    config = {
        "model": common.model_info(args.model),
        "images": len(images),
        "repeats": repeats,
        "gaps_ms": GAPS_MS,
    }
    run.finish(config, {"median_us": results}, {title: common.markdown_table(headers, rows)})


if __name__ == "__main__":
    main()
