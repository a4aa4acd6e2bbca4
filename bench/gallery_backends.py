"""``bench/gallery.py --backends``: the in-memory exact gallery against pgvector's HNSW gallery, on
realistic embeddings (see gallery.py's docstring). Each size runs in a schema of its own; the replica's
memory is measured in fresh processes (``--rss-worker``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import common
import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TEMPLATES_PER_IDENTITY = 3
TOP_K = 5
CONCURRENCY = (1, 8)
ENROLLMENTS = 20
COPY_CHUNK = 50_000
RSS_SEARCHES = 200
BACKENDS = ("pgvector", "memory")


# -- the embeddings ----------------------------------------------------------------------------------


def real_faces(model_dir: Path, lfw_root: Path, cache: Path, people: int | None) -> dict[str, np.ndarray]:
    """The shipped model's embeddings of LFW: ``gallery`` (the first photo of each person with two or
    more) and ``probes`` (their second photo), faces found in both; cached per model in ``cache``."""
    from facever.model.runtime import FacePipeline
    from facever.training.evaluation.evaluate import embed_images
    from facever.training.evaluation.lfw import LFW

    lfw = LFW(lfw_root)
    chosen = [keys[:2] for keys in lfw.identities().values() if len(keys) >= 2][:people]
    paths = {key: lfw.path(key) for keys in chosen for key in keys}
    embedded = embed_images(FacePipeline(model_dir, "cpu", 2), paths, cache, "lfw-gallery")
    both = [keys for keys in chosen if all(embedded["found"][key] for key in keys)]
    return {
        "gallery": np.stack([embedded["embeddings"][first] for first, _ in both]).astype(np.float32),
        "probes": np.stack([embedded["embeddings"][second] for _, second in both]).astype(np.float32),
    }


def normalized(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def templates(
    real: dict[str, np.ndarray], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` unit templates and their identity numbers: the real faces (identity i = LFW person i),
    then synthetic people, each a point between two real ones moved by a person's spread, with
    TEMPLATES_PER_IDENTITY photos spread as a real person's two photos are."""
    gallery, probes = real["gallery"], real["probes"]
    # A real person's two photos differ by d; each photo lies about |d|/sqrt(2) from the person.
    spread = float(np.sqrt(np.mean(np.sum((probes - gallery) ** 2, axis=1)) / (2 * gallery.shape[1])))
    n_real = min(len(gallery), size)
    rows, identities = [gallery[:n_real]], [np.arange(n_real)]
    synthetic = size - n_real
    people = -(-synthetic // TEMPLATES_PER_IDENTITY)
    for start in range(0, people, 100_000):
        n = min(100_000, people - start)
        a, b = gallery[rng.integers(0, len(gallery), n)], gallery[rng.integers(0, len(gallery), n)]
        w = rng.uniform(0.3, 0.7, (n, 1)).astype(np.float32)
        centers = normalized(w * a + (1 - w) * b + rng.normal(0, spread, a.shape).astype(np.float32))
        photos = np.repeat(centers, TEMPLATES_PER_IDENTITY, axis=0)
        photos = normalized(photos + rng.normal(0, spread, photos.shape).astype(np.float32))
        rows.append(photos)
        identities.append(n_real + start + np.repeat(np.arange(n), TEMPLATES_PER_IDENTITY))
    matrix, identity = np.concatenate(rows)[:size], np.concatenate(identities)[:size]
    return matrix, identity


# -- PostgreSQL ----------------------------------------------------------------------------------


@contextmanager
def schema(postgres_url: str, label: str):
    """A URL on a fresh schema (the vector extension in public), migrated, dropped after."""
    from facever.app.db.migrate import upgrade

    name = f"bench_gallery_{label}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"))
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={name},public"})
    url_text = url.render_as_string(hide_password=False)
    try:
        upgrade(url_text)
        yield url_text
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def load(url: str, matrix: np.ndarray, identity: np.ndarray, model) -> dict:
    """COPY the identities and templates (blob and vector, as the service stores them) without the
    index, then build it, timed."""
    import psycopg
    from pgvector.psycopg import register_vector

    from facever.app.db.vector_schema import create_index
    from facever.app.db.vectors import INDEX
    from facever.app.stored_embeddings import to_bytes

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    with psycopg.connect(dsn) as connection:
        register_vector(connection)
        connection.execute(f"DROP INDEX {INDEX}")
        with connection.cursor() as cursor:
            with cursor.copy("COPY identities (id, name, metadata) FROM STDIN") as copy:
                for number in range(int(identity.max()) + 1):
                    copy.write_row((number + 1, f"person {number}", "{}"))
            statement = (
                "COPY faces (identity_id, model_name, model_version, embedding, detection_score, "
                "embedding_vector) FROM STDIN WITH (FORMAT BINARY)"
            )
            with cursor.copy(statement) as copy:
                copy.set_types(["int8", "varchar", "varchar", "bytea", "float8", "vector"])
                for row, number in zip(matrix, identity, strict=True):
                    copy.write_row((int(number) + 1, model.name, model.version, to_bytes(row), 0.99, row))
        connection.execute(
            "SELECT setval(pg_get_serial_sequence('identities', 'id'), max(id)) FROM identities"
        )
    loaded = time.perf_counter() - started

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("SET maintenance_work_mem = '2GB'"))  # the graph fits: one pass
        started = time.perf_counter()
        create_index(connection)
    build = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE faces"))
        connection.execute(text("VACUUM ANALYZE identities"))
        sizes = connection.execute(
            text(
                "SELECT pg_relation_size('faces'), pg_indexes_size('faces'), "
                f"pg_relation_size('{INDEX}'), pg_total_relation_size('faces')"
            )
        ).one()
    engine.dispose()
    return {
        "copy_s": loaded,
        "index_build_s": build,
        "maintenance_work_mem": "2GB",
        "table_bytes": sizes[0],
        "indexes_bytes": sizes[1],
        "hnsw_index_bytes": sizes[2],
        "total_bytes": sizes[3],
    }


# -- measuring -------------------------------------------------------------------------------------


def latencies(search, probes: np.ndarray, threshold: float, concurrency: int) -> dict:
    """Each probe searched once, ``concurrency`` at a time, as identify calls the gallery."""

    def one(probe: np.ndarray) -> float:
        started = time.perf_counter()
        search(probe, TOP_K, threshold)
        return time.perf_counter() - started

    for probe in probes[:20]:  # warm: connections, caches
        search(probe, TOP_K, threshold)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        seconds = list(pool.map(one, probes))
    elapsed = time.perf_counter() - started
    return {
        **common.latency_stats(seconds),
        "searches_per_s": len(probes) / elapsed,
        "concurrency": concurrency,
    }


def agreement(gallery, exact, probes: np.ndarray) -> dict:
    """recall@1: the probe's best identity is exact search's; also the same best face, and the same
    top-5 identities in the same order."""
    same_identity = same_face = same_top = 0
    for probe in probes:
        got, want = gallery.search(probe, TOP_K, None), exact.search(probe, TOP_K, None)
        same_identity += int(got[0].identity_id == want[0].identity_id)
        same_face += int(got[0].face_id == want[0].face_id)
        same_top += int([m.identity_id for m in got] == [m.identity_id for m in want])
    n = len(probes)
    return {
        "probes": n,
        "recall_at_1": same_identity / n,
        "same_best_face": same_face / n,
        "same_top5": same_top / n,
    }


def enrollment_under_index(url: str, gallery, model, rng: np.random.Generator) -> dict:
    """Enrolling one template (insert into the table and the HNSW graph, commit) and deleting it,
    as the service's crud does; plus the recount a replica makes after its own write."""
    from facever.app import crud
    from facever.app.db.session import Database
    from facever.app.stored_embeddings import TemplateCodec

    database = Database(url)
    add, delete, recount = [], [], []
    for vector in normalized(rng.normal(size=(ENROLLMENTS, 128)).astype(np.float32)):
        with database.sessions() as session:
            identity = crud.create_identity(session, "new", None, {}).id
        started = time.perf_counter()
        with database.sessions() as session:
            templates = [crud.NewTemplate(vector, 0.99)]
            (face,) = crud.add_templates(session, identity, model, templates, TemplateCodec())
        add.append(time.perf_counter() - started)
        started = time.perf_counter()
        gallery.after_write()
        recount.append(time.perf_counter() - started)
        found = gallery.search(vector, 1, None)
        assert found and found[0].face_id == face.id, "an enrollment is searched at once"
        started = time.perf_counter()
        with database.sessions() as session:
            crud.delete_identity(session, identity)
        delete.append(time.perf_counter() - started)
    database.dispose()
    return {
        "add_one_template": common.latency_stats(add),
        "recount_after_write": common.latency_stats(recount),
        "delete_one_identity": common.latency_stats(delete),
    }


def replica_rss(url: str, backend: str, model, probes: np.ndarray, threshold: float) -> dict:
    """A fresh process as a replica holds it: the gallery opened and synced, RSS_SEARCHES searches made."""
    spec = {"url": url, "backend": backend, "model": [model.name, model.version], "threshold": threshold}
    spec["probes"] = probes[:RSS_SEARCHES].tolist()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("gallery.py")), "--rss-worker"],
        input=json.dumps(spec),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def rss_worker(spec: dict) -> dict:
    from facever.app.core.config import Settings
    from facever.app.db.session import Database
    from facever.app.gallery_backend import open_gallery
    from facever.app.stored_embeddings import ModelRef

    database = Database(spec["url"])
    baseline = common.rss_bytes()
    gallery = open_gallery(Settings(gallery=spec["backend"]), database, ModelRef(*spec["model"]), 128)
    gallery.sync()
    for probe in np.asarray(spec["probes"], np.float32):
        gallery.search(probe, TOP_K, spec["threshold"])
    return {
        "rss_bytes": common.rss_bytes(),
        "rss_before_gallery_bytes": baseline,
        "rss_peak_bytes": common.rss_bytes(field="VmHWM"),
        "templates": gallery.size,
    }


def plan_uses_index(url: str, probe: np.ndarray, model, ef_search: int) -> bool:
    from pgvector import Vector

    from facever.app.db.vectors import INDEX
    from facever.app.pgvector_gallery import SEARCH

    engine = create_engine(url)
    with engine.connect() as connection:
        lines = connection.execute(
            text("EXPLAIN " + SEARCH.text),
            {"probe": Vector(probe).to_text(), "model_name": model.name, "model_version": model.version}
            | {"candidates": ef_search, "top_k": TOP_K},
        ).scalars()
        uses = any(INDEX in line for line in lines)
    engine.dispose()
    return uses


def run_size(
    size: int,
    real: dict,
    postgres_url: str,
    model,
    threshold: float,
    ef_search: int,
    seed: int,
    ef_sweep: tuple[int, ...] = (),
) -> dict:
    from facever.app.db.session import Database
    from facever.app.pgvector_gallery import PgvectorGallery
    from facever.model.matching import TemplateIndex

    rng = np.random.default_rng(seed)
    matrix, identity = templates(real, size, rng)
    probes = real["probes"]
    exact = TemplateIndex(matrix.shape[1])
    exact.replace(matrix, np.arange(1, size + 1), identity + 1)  # ids as COPY numbers them
    result: dict = {"templates": size, "identities": int(identity.max()) + 1, "probes": len(probes)}
    result["memory"] = {f"c{c}": latencies(exact.search, probes, threshold, c) for c in CONCURRENCY}

    with schema(postgres_url, "empty") as empty_url:
        result["rss_empty"] = {b: replica_rss(empty_url, b, model, probes, threshold) for b in BACKENDS}
    with schema(postgres_url, str(size)) as url:
        result["load"] = load(url, matrix, identity, model)
        result["plan_uses_hnsw"] = plan_uses_index(url, probes[0], model, ef_search)
        database = Database(url)
        gallery = PgvectorGallery(database, model, ef_search)
        started = time.perf_counter()
        gallery.sync()
        result["first_count_s"] = time.perf_counter() - started
        result["pgvector"] = {f"c{c}": latencies(gallery.search, probes, threshold, c) for c in CONCURRENCY}
        result["agreement"] = agreement(gallery, exact, probes)
        result["ef_sweep"] = {
            str(ef): {
                "c1": latencies(PgvectorGallery(database, model, ef).search, probes, threshold, 1),
                "agreement": agreement(PgvectorGallery(database, model, ef), exact, probes),
            }
            for ef in ef_sweep
            if ef != ef_search
        }
        result["enrollment"] = enrollment_under_index(url, gallery, model, rng)
        database.dispose()
        del exact, matrix
        result["rss"] = {b: replica_rss(url, b, model, probes, threshold) for b in BACKENDS}
    return result


def tables(rows: list[dict], threshold: float, ef_search: int) -> dict[str, str]:
    fmt = common.fmt
    mib = 2**20

    def p50_99(stats: dict) -> str:
        return f"{fmt(stats['median_ms'], 2)} / {fmt(stats['p99_ms'], 2)}"

    latency = []
    for r in rows:
        for backend in ("memory", "pgvector"):
            latency.append(
                [
                    f"{r['templates']:,}",
                    "in memory, exact" if backend == "memory" else f"pgvector HNSW (ef_search {ef_search})",
                    p50_99(r[backend]["c1"]),
                    p50_99(r[backend]["c8"]),
                    f"{r[backend]['c8']['searches_per_s']:,.0f}",
                    "1 (itself)" if backend == "memory" else f"{r['agreement']['recall_at_1']:.4f}",
                    f"{(r['rss'][backend]['rss_bytes'] - r['rss_empty'][backend]['rss_bytes']) / mib:+,.1f}",
                ]
            )
    search = common.markdown_table(
        [
            "templates",
            "gallery",
            "identify p50 / p99 ms, 1 at a time",
            "p50 / p99 ms, 8 at a time",
            "searches/s at 8",
            f"recall@1 vs exact ({rows[0]['probes']:,} real probes)",
            "replica RSS vs empty gallery, MiB",
        ],
        latency,
    )
    sweep_rows = [
        [
            f"{r['templates']:,}",
            ef,
            p50_99(result["c1"]),
            f"{result['agreement']['recall_at_1']:.4f}",
            f"{result['agreement']['same_top5']:.3f}",
        ]
        for r in rows
        for ef, result in sorted(
            {
                **r.get("ef_sweep", {}),
                str(ef_search): {"c1": r["pgvector"]["c1"], "agreement": r["agreement"]},
            }.items(),
            key=lambda item: int(item[0]),
        )
    ]
    sweep = common.markdown_table(
        ["templates", "hnsw.ef_search", "identify p50 / p99 ms, 1 at a time", "recall@1", "same top 5"],
        sweep_rows,
    )
    storage = common.markdown_table(
        [
            "templates",
            "COPY s",
            "HNSW build s",
            "table MiB",
            "HNSW index MiB",
            "all indexes MiB",
            "enroll 1 template ms, p50 / p99",
            "recount after a write ms, p50",
            "delete 1 identity ms, p50",
        ],
        [
            [
                f"{r['templates']:,}",
                fmt(r["load"]["copy_s"], 1),
                fmt(r["load"]["index_build_s"], 1),
                f"{r['load']['table_bytes'] / mib:,.0f}",
                f"{r['load']['hnsw_index_bytes'] / mib:,.0f}",
                f"{r['load']['indexes_bytes'] / mib:,.0f}",
                p50_99(r["enrollment"]["add_one_template"]),
                fmt(r["enrollment"]["recount_after_write"]["median_ms"], 1),
                fmt(r["enrollment"]["delete_one_identity"]["median_ms"], 1),
            ]
            for r in rows
        ],
    )
    return {
        f"Identify: in-memory exact vs pgvector HNSW (score >= {threshold:.3f}, top {TOP_K})": search,
        "pgvector: loading, index, enrollment under the index, disk": storage,
        "pgvector: hnsw.ef_search against time and recall (same gallery, same probes)": sweep,
    }


def main(args, run) -> None:
    from facever.app.stored_embeddings import ModelRef

    model_info = common.model_info(args.model)
    model = ModelRef(model_info["name"], model_info["version"])
    threshold = model_info["identify_threshold"] or model_info["threshold"]
    sizes = (
        [int(s) for s in args.backend_sizes.split(",")]
        if args.backend_sizes
        else ([3000] if args.smoke else [100_000, 1_000_000])
    )
    cache = args.out / "cache" if args.smoke else common.REPO / ".cache"
    real = real_faces(args.model, args.data, cache, 40 if args.smoke else None)
    rows = []
    for size in sizes:
        print(f"gallery backends: {size:,} templates ...", flush=True)
        sweep = tuple(int(ef) for ef in args.ef_sweep.split(",")) if args.ef_sweep else ()
        rows.append(run_size(size, real, args.postgres_url, model, threshold, args.ef_search, size, sweep))
    config = {
        "model": model_info,
        "threshold": threshold,
        "top_k": TOP_K,
        "ef_search": args.ef_search,
        "templates_per_identity": TEMPLATES_PER_IDENTITY,
        "real_gallery_faces": len(real["gallery"]),
        "real_probes": len(real["probes"]),
        "postgres_url": make_url(args.postgres_url).render_as_string(hide_password=True),
        "hnsw": {"m": 16, "ef_construction": 64, "iterative_scan": "relaxed_order"},
    }
    run.finish(config, {"sizes": rows}, tables(rows, threshold, args.ef_search))
