"""How far a score moves when the detector's box and landmarks move by a hair: the size of the differences
between CPUs. MTCNN runs in float, and onnxruntime's float kernels sum in another order on another CPU
(AVX2, AVX-512), so the box and landmarks differ in their last bits from one CPU to the next; the chip's
pixels are rounded to whole values, so a change far below a pixel can still change some of them, and
with them the embedding. This script moves the first photo's face of LFW fold-1 pairs by Gaussian noise
of 1e-6 to 1e-2 pixels (each coordinate of the box and of the five landmarks), cuts and embeds it again,
and reports how much the pair's cosine score moved: how often, median and largest change.
"""

from __future__ import annotations

import dataclasses

import common
import numpy as np

from facever.model.images import ImageError, read_image
from facever.model.runtime import FacePipeline
from facever.training.evaluation.lfw import LFW

NOISE_PX = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "jitter")
    parser.add_argument("--pairs", type=int, help="LFW fold-1 pairs, half same, half different (default 100)")
    parser.add_argument("--draws", type=int, default=5, help="noise draws per pair and size (default 5)")
    args = parser.parse_args()
    count = args.pairs or (4 if args.smoke else 100)
    run = common.Run("jitter", args)
    lfw = LFW(args.data)
    fold = [pair for pair in lfw.pairs() if pair.fold == 1]
    pairs = [p for p in fold if p.same][: count // 2] + [p for p in fold if not p.same][: count - count // 2]
    pipeline = FacePipeline(args.model, "cpu", 1, detection_device="cpu")
    rng = np.random.default_rng(0)

    changes: dict[float, list[float]] = {noise: [] for noise in NOISE_PX}
    chips_changed = dict.fromkeys(NOISE_PX, 0)
    used = 0
    for pair in pairs:
        first, second = read_image(lfw.path(pair.first)), read_image(lfw.path(pair.second))
        try:
            face, other = pipeline.choose(first), pipeline.choose(second)
        except ImageError:
            continue
        used += 1
        views = pipeline.views(first, face)
        reference = pipeline.embed(pipeline.views(second, other)[None])[0]
        score = float(pipeline.embed(views[None])[0] @ reference)
        for noise in NOISE_PX:
            for _ in range(args.draws):
                moved = dataclasses.replace(
                    face,
                    box=tuple(float(v) for v in np.asarray(face.box) + rng.normal(0, noise, 4)),
                    landmarks=face.landmarks + rng.normal(0, noise, face.landmarks.shape),
                )
                moved_views = pipeline.views(first, moved)
                chips_changed[noise] += int(not np.array_equal(moved_views, views))
                changes[noise].append(abs(float(pipeline.embed(moved_views[None])[0] @ reference) - score))

    draws = used * args.draws
    results = {
        str(noise): {
            "draws": draws,
            "chips_changed": chips_changed[noise],
            "scores_changed": int(np.count_nonzero(changes[noise])),
            "median_abs_change": float(np.median(changes[noise])) if draws else None,
            "max_abs_change": float(np.max(changes[noise])) if draws else None,
        }
        for noise in NOISE_PX
    }
    headers = [
        "noise (px, s.d.)",
        "draws",
        "chips changed",
        "scores changed",
        "median |change|",
        "largest |change|",
    ]
    rows = [
        [
            f"{noise:g}",
            r["draws"],
            f"{r['chips_changed']} ({100 * r['chips_changed'] / max(draws, 1):.0f} %)",
            f"{r['scores_changed']} ({100 * r['scores_changed'] / max(draws, 1):.0f} %)",
            f"{r['median_abs_change']:.1e}" if draws else "—",
            f"{r['max_abs_change']:.1e}" if draws else "—",
        ]
        for noise, r in zip(NOISE_PX, results.values(), strict=True)
    ]
    title = f"A score when the first photo's box and landmarks move by noise ({used} LFW fold-1 pairs)"
    config = {
        "model": common.model_info(args.model),
        "pairs": used,
        "draws": args.draws,
        "noise_px": NOISE_PX,
    }
    run.finish(config, {"by_noise": results}, {title: common.markdown_table(headers, rows)})


if __name__ == "__main__":
    main()
