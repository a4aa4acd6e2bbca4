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

``--backends``: the two gallery backends of the service side by side (gallery-backends.json), the
in-memory exact search and PostgreSQL's pgvector HNSW index, at 100 k and 1 M templates (--backend-sizes)
of realistic embeddings: the shipped model's embeddings of real LFW faces (the first photo of each
person with two or more; cached in .cache/) plus synthetic identities drawn around them (a new person
between two real ones, its templates spread as a real person's photos are). Probes: the second photo
of each of those people (>= 1,000 real faces). Reported per size and backend: identify p50/p99 at
concurrency 1 and 8 (the service's search call with the identify threshold, as identify makes it),
recall@1 of pgvector against the exact search (same best identity), the HNSW index build time,
enrolling one template and deleting one under the index, a replica's resident memory with the
gallery and with an empty one, and the table's and index's size on disk. It needs a PostgreSQL with
pgvector (--postgres-url; each size in a schema of its own, dropped after).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import common
import gallery_backends
import numpy as np

from facever.app.core.config import Settings

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
    parser.add_argument(
        "--backends", action="store_true", help="in-memory vs pgvector (gallery-backends.json)"
    )
    parser.add_argument(
        "--backend-sizes", help="--backends: template counts (default 100000,1000000; smoke 3000)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "FACEVER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="--backends: a PostgreSQL with pgvector (a schema per size is created and dropped)",
    )
    parser.add_argument(
        "--ef-search", type=int, default=Settings().hnsw_ef_search, help="--backends: FACEVER_HNSW_EF_SEARCH"
    )
    parser.add_argument(
        "--ef-sweep", default="40,80,120", help="--backends: other ef_search values timed on the same gallery"
    )
    parser.add_argument("--rss-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_worker:
        print(json.dumps(gallery_backends.rss_worker(json.loads(sys.stdin.read()))))
        return
    if args.backends:
        if args.name == "gallery":
            args.name = "gallery-backends"
        gallery_backends.main(args, common.Run("gallery-backends", args))
        return
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
