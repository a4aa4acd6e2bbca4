"""Gallery search: identify latency (p50, p99) and memory for 1k, 10k, 100k and 1M templates.

It runs the service's own search core, ``facever.model.matching.TemplateIndex``, on synthetic unit
vectors of the model's embedding size (three templates per identity); no database is involved. Each
size runs in a fresh process, so that its memory figures are its own: the bytes of the matrix and
ids, and the growth of the process's resident memory (VmRSS) when the gallery is loaded.

Probes are noisy copies of gallery templates, their cosine with the source halfway between the
model's identify threshold and 1, so a search has a real match. Timed: ``search(probe, top_k=5,
min_score)`` with the model card's identify threshold (what identify does by default; the verify
threshold where the card has none) and with no threshold (the top 5 regardless of score). Also
timed: adding one template (an enrollment) and removing one identity (a deletion), as the gallery
applies them while it serves. numpy's BLAS uses every core it is given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import common
import numpy as np

SIZES = (1_000, 10_000, 100_000, 1_000_000)
TEMPLATES_PER_IDENTITY = 3
TOP_K = 5
CHUNK = 65_536


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def worker(size: int, dim: int, threshold: float, probes: int, changes: int) -> dict:
    from facever.model.matching import TemplateIndex

    rng = np.random.default_rng(size)
    TemplateIndex(dim).search(unit_rows(rng, 1, dim)[0], TOP_K, None)  # imports and BLAS warmed up
    rss_before = common.rss_bytes()
    matrix = np.empty((size, dim), np.float32)  # as a reload builds it: one matrix, rows in id order
    for start in range(0, size, CHUNK):
        matrix[start : start + CHUNK] = unit_rows(rng, min(CHUNK, size - start), dim)
    index = TemplateIndex(dim)
    index.replace(matrix, np.arange(size), np.arange(size) // TEMPLATES_PER_IDENTITY)
    rss_loaded = common.rss_bytes()
    index_bytes = index.nbytes

    sources = rng.integers(0, size, probes)
    cosine = (1 + max(threshold, 0.0)) / 2  # of a probe with its source: 1 / sqrt(1 + dim sigma²)
    sigma = np.sqrt((1 / cosine**2 - 1) / dim)
    queries = matrix[sources] + rng.normal(0, sigma, (probes, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    del matrix  # the index holds it
    timings = {"threshold": [], "no_threshold": []}
    found = 0
    for query, source in zip(queries, sources, strict=True):
        for label, min_score in (("threshold", threshold), ("no_threshold", None)):
            start = time.perf_counter()
            matches = index.search(query, TOP_K, min_score)
            timings[label].append(time.perf_counter() - start)
            if label == "threshold":
                found += int(bool(matches) and matches[0].identity_id == source // TEMPLATES_PER_IDENTITY)

    add, remove = [], []
    for i in range(changes):
        new = unit_rows(rng, 1, dim)
        start = time.perf_counter()
        index.add(new, [size + i], [size + i])
        add.append(time.perf_counter() - start)
    for i in range(changes):
        start = time.perf_counter()
        index.remove(identity_ids=[i])
        remove.append(time.perf_counter() - start)

    return {
        "templates": size,
        "identities": -(-size // TEMPLATES_PER_IDENTITY),
        "dim": dim,
        "matrix_bytes": size * dim * 4,
        "index_bytes": index_bytes,
        "rss_before_bytes": rss_before,
        "rss_loaded_bytes": rss_loaded,
        "rss_delta_bytes": rss_loaded - rss_before,
        "rss_peak_bytes": common.rss_bytes(field="VmHWM"),
        "search_threshold": common.latency_stats(timings["threshold"]),
        "search_no_threshold": common.latency_stats(timings["no_threshold"]),
        "probes": probes,
        "probe_cosine_with_source": cosine,
        "probes_matched_at_threshold": found,
        "add_one_template": common.latency_stats(add),
        "remove_one_identity": common.latency_stats(remove),
    }


def table(rows: list[dict], threshold: float) -> str:
    fmt = common.fmt
    body = [
        [
            f"{r['templates']:,}",
            f"{fmt(r['search_threshold']['median_ms'], 2)} / {fmt(r['search_threshold']['p99_ms'], 2)}",
            f"{fmt(r['search_no_threshold']['median_ms'], 2)} / {fmt(r['search_no_threshold']['p99_ms'], 2)}",
            f"{r['index_bytes'] / 2**20:,.1f}",
            f"{r['rss_delta_bytes'] / 2**20:,.1f}",
            f"{fmt(r['add_one_template']['median_ms'], 3)} / {fmt(r['add_one_template']['max_ms'], 1)}",
            fmt(r["remove_one_identity"]["median_ms"], 2),
        ]
        for r in rows
    ]
    headers = [
        "templates",
        f"identify p50 / p99 ms (score ≥ {threshold:.3f})",
        "identify p50 / p99 ms (no threshold)",
        "matrix + ids MiB",
        "RSS growth MiB",
        "add 1 template ms, median / max",
        "remove 1 identity ms",
    ]
    return common.markdown_table(headers, body)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "gallery")
    parser.add_argument("--sizes", help="comma-separated template counts (default 1k..1M; smoke 1000)")
    parser.add_argument("--probes", type=int, help="searches per size and mode (default 200; smoke 20)")
    parser.add_argument("--dim", type=int, help="embedding size (default: the model card's)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(sys.stdin.read())
        print(json.dumps(worker(args.worker, **spec), default=common.jsonable))
        return

    run = common.Run("gallery", args)
    model = common.model_info(args.model)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([1000] if args.smoke else list(SIZES))
    spec = {
        "dim": args.dim or model["embedding_size"],
        "threshold": model["identify_threshold"] or model["threshold"],
        "probes": args.probes or (20 if args.smoke else 200),
        "changes": 3 if args.smoke else 10,
    }
    rows = []
    for size in sizes:
        print(f"gallery: {size:,} templates ...", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--worker", str(size)],
            input=json.dumps(spec),
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout))
    config = {"model": model, "top_k": TOP_K, "templates_per_identity": TEMPLATES_PER_IDENTITY, **spec}
    tables = {"Identify: search the in-memory gallery": table(rows, spec["threshold"])}
    run.finish(config, {"sizes": rows}, tables)


if __name__ == "__main__":
    main()
