"""Templates encrypted at rest: what FACEVER_TEMPLATE_KEY costs per enrollment and at gallery load.

For each database (SQLite in a temporary folder; PostgreSQL too when FACEVER_BENCH_POSTGRES_URL or the
test server at 127.0.0.1:5432 answers, in a schema of its own, dropped after), two databases filled
alike, one with a key and one without, timed in alternation:

* enrollment: ``crud.add_templates`` of one template, as POST /v1/identities/{id}/faces stores one
  accepted face (the gallery version bump, the insert, the audit record, the commit), timed one at a
  time; also the bare AES-256-GCM encryption of one template;
* gallery load: a fresh ``Gallery.sync()`` of N templates (what each server process does at start and
  after falling behind the change log), the median of five loads.

Synthetic unit vectors of the model's embedding size; no model runs, no HTTP.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import common
import numpy as np

SIZES = (10_000, 100_000)
ENROLLMENTS = 300
LOADS = 5
POSTGRES_URL = os.environ.get(
    "FACEVER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # a fixed benchmark key (never a real one)


@contextmanager
def sqlite_url():
    folder = Path(tempfile.mkdtemp(prefix="facever-bench-"))
    try:
        yield f"sqlite:///{folder / 'bench.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_url():
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(POSTGRES_URL)
    schema = f"facever_bench_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(POSTGRES_URL)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def postgres_reachable() -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure: not benchmarked
        return False
    finally:
        engine.dispose()


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


KINDS = ("clear", "encrypted")


def measure(urls: dict[str, str], sizes: list[int], dim: int, enrollments: int) -> dict:
    """Two databases of the same kind, one per entry of KINDS, filled alike; every timing alternates
    between them, so that both see the same machine (other work on it moves both alike)."""
    from facever.app import crud
    from facever.app.audit import Actor, AuditEntry
    from facever.app.db.migrate import upgrade
    from facever.app.db.session import Database
    from facever.app.gallery import Gallery
    from facever.app.stored_embeddings import ModelRef, TemplateCodec
    from facever.app.template_crypto import KeyRing, parse_key

    codecs = {"clear": TemplateCodec(), "encrypted": TemplateCodec(KeyRing.of(parse_key(KEY, "bench key")))}
    model = ModelRef("bench", "1")
    rng = np.random.default_rng(0)
    databases = {kind: Database(urls[kind]) for kind in KINDS}
    try:
        identities = {}
        for kind, database in databases.items():
            upgrade(urls[kind], database.engine)
            with database.sessions() as session:
                identities[kind] = crud.create_identity(session, "bench", None, {}).id
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for vector in unit_rows(rng, enrollments, dim):
            for kind, database in databases.items():
                record = AuditEntry("enroll", Actor(None, "bench"), [identities[kind]], decision="enrolled")
                templates = [crud.NewTemplate(vector, 0.99)]
                started = time.perf_counter()
                with database.sessions() as session:
                    crud.add_templates(session, identities[kind], model, templates, codecs[kind], record)
                times[kind].append(time.perf_counter() - started)
        result: dict = {
            kind: {"enroll_one_template": common.latency_stats(times[kind]), "loads": []} for kind in KINDS
        }
        stored = enrollments
        for size in sizes:
            for start in range(stored, size, 1000):  # fill up to ``size`` in large transactions
                templates = [crud.NewTemplate(v, 0.99) for v in unit_rows(rng, min(1000, size - start), dim)]
                for kind, database in databases.items():
                    with database.sessions() as session:
                        crud.add_templates(session, identities[kind], model, templates, codecs[kind])
            stored = max(stored, size)
            loads: dict[str, list[float]] = {kind: [] for kind in KINDS}
            for _ in range(LOADS):
                for kind, database in databases.items():
                    gallery = Gallery(database, model, dim, codecs[kind])
                    started = time.perf_counter()
                    gallery.sync()
                    loads[kind].append(time.perf_counter() - started)
                    assert gallery.size == size, (gallery.size, size)
            for kind in KINDS:
                result[kind]["loads"].append({"templates": size, "load": common.latency_stats(loads[kind])})
        return result
    finally:
        for database in databases.values():
            database.dispose()


def cipher_cost(dim: int, n: int) -> dict:
    from facever.app.template_crypto import KeyRing, parse_key

    ring = KeyRing.of(parse_key(KEY, "bench key"))
    plain = np.zeros(dim, "<f4").tobytes()
    started = time.perf_counter()
    blobs = [ring.encrypt(plain, i, 1) for i in range(n)]
    encrypt = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for i, (blob, key) in enumerate(blobs):
        ring.decrypt(blob, key, i, 1)
    decrypt = (time.perf_counter() - started) / n
    return {"encrypt_us": encrypt * 1e6, "decrypt_us": decrypt * 1e6, "templates": n}


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "template_encryption")
    parser.add_argument("--sizes", help="comma-separated gallery sizes (default 10k,100k; smoke 2000)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    run = common.Run("template_encryption", args)
    model = common.model_info(args.model)
    dim = model["embedding_size"]
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([2000] if args.smoke else list(SIZES))
    enrollments = 30 if args.smoke else ENROLLMENTS
    databases = {"sqlite": sqlite_url}
    if not args.no_postgres and postgres_reachable():
        databases["postgresql"] = postgres_url

    results: dict = {"cipher": cipher_cost(dim, 2000 if args.smoke else 20_000), "databases": {}}
    for name, make_url in databases.items():
        print(f"{name} ...", flush=True)
        with make_url() as clear_url, make_url() as encrypted_url:
            both = measure({"clear": clear_url, "encrypted": encrypted_url}, sizes, dim, enrollments)
        for kind in KINDS:
            results["databases"][f"{name}, {kind}"] = both[kind]

    fmt = common.fmt
    rows = []
    for name in databases:
        clear, encrypted = (results["databases"][f"{name}, {kind}"] for kind in ("clear", "encrypted"))
        rows.append(
            [
                name,
                "enroll 1 template (median ms)",
                fmt(clear["enroll_one_template"]["median_ms"], 2),
                fmt(encrypted["enroll_one_template"]["median_ms"], 2),
                fmt(
                    encrypted["enroll_one_template"]["median_ms"] - clear["enroll_one_template"]["median_ms"],
                    2,
                ),
            ]
        )
        for plain_load, secret_load in zip(clear["loads"], encrypted["loads"], strict=True):
            rows.append(
                [
                    name,
                    f"load gallery of {plain_load['templates']:,} (median ms)",
                    fmt(plain_load["load"]["median_ms"], 0),
                    fmt(secret_load["load"]["median_ms"], 0),
                    fmt(secret_load["load"]["median_ms"] - plain_load["load"]["median_ms"], 0),
                ]
            )
    cipher = results["cipher"]
    rows.append(["—", "AES-256-GCM of 1 template (µs): encrypt / decrypt", "—",
                 f"{cipher['encrypt_us']:.1f} / {cipher['decrypt_us']:.1f}", "—"])  # fmt: skip
    tables = {
        "Templates encrypted at rest (FACEVER_TEMPLATE_KEY)": common.markdown_table(
            ["database", "what", "clear", "encrypted", "cost of the key"], rows
        )
    }
    config = {"model": model, "dim": dim, "sizes": sizes, "enrollments": enrollments, "loads": LOADS}
    run.finish(config, results, tables)


if __name__ == "__main__":
    main()
