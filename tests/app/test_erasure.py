"""Erasure: after DELETE of an identity or of one face returns, no file of the SQLite database (main
file, -wal, -shm) holds the deleted templates' bytes, unless a reader on an older snapshot holds the
checkpoint up: then they are gone as soon as it ends (background retries). On PostgreSQL the service
vacuums the faces table after a delete (best effort, in the background)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from service_samples import ADMIN, create, enroll
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from facever.app.db.session import erasure_pending


def stored_templates(database: Path, face_ids: list[int]) -> dict[int, bytes]:
    """The exact embedding bytes of these faces, read from the database file itself."""
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            f"SELECT id, embedding FROM faces WHERE id IN ({','.join('?' * len(face_ids))})", face_ids
        ).fetchall()
    finally:
        connection.close()
    assert len(rows) == len(face_ids)
    return {face_id: bytes(blob) for face_id, blob in rows}


def needles(template: bytes) -> list[bytes]:
    """The whole template and a distinctive slice of it (32 floats from the middle)."""
    middle = len(template) // 2
    return [template, template[middle : middle + 128]]


def files_holding(directory: Path, template: bytes) -> list[str]:
    found = []
    for path in sorted(directory.iterdir()):
        content = path.read_bytes()
        if any(needle in content for needle in needles(template)):
            found.append(path.name)
    return found


@pytest.fixture
def sqlite_app(tmp_path, start_app):
    with start_app(f"sqlite:///{tmp_path / 'facever.db'}") as client:
        yield client, tmp_path


def test_secure_delete_is_on_for_every_connection(sqlite_app):
    client, _ = sqlite_app
    engine = client.app.state.service.database.engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_no_database_file_keeps_deleted_templates(sqlite_app):
    client, directory = sqlite_app
    bush = create(client, "George W. Bush")
    bush_faces = enroll(client, bush, [("George_W_Bush", n) for n in (1, 2, 3, 4)])
    serena = create(client, "Serena Williams")
    serena_faces = enroll(client, serena, [("Serena_Williams", n) for n in (1, 2, 3)])
    templates = stored_templates(directory / "facever.db", bush_faces + serena_faces)
    # The search finds them while they are stored (in the -wal file or the main file).
    assert all(files_holding(directory, template) for template in templates.values())

    assert client.delete(f"/v1/identities/{bush}", headers=ADMIN).status_code == 204
    response = client.delete(f"/v1/identities/{serena}/faces/{serena_faces[0]}", headers=ADMIN)
    assert response.status_code == 204

    names = sorted(path.name for path in directory.iterdir())
    assert "facever.db" in names
    for face_id in bush_faces + serena_faces[:1]:
        assert files_holding(directory, templates[face_id]) == [], f"face {face_id} is still in {names}"
    for face_id in serena_faces[1:]:  # what was not deleted is still stored, and found by the search
        assert files_holding(directory, templates[face_id]), face_id

    # The service goes on as before, and what it kept survives a restart.
    assert client.get(f"/v1/identities/{serena}", headers=ADMIN).json()["face_count"] == 2


def wait_for_erasure(engine, within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while erasure_pending(engine):
        assert time.monotonic() < deadline, "the background erasure checkpoint did not finish"
        time.sleep(0.05)


def test_a_reader_on_an_old_snapshot_delays_erasure_not_the_delete_nor_other_writes(sqlite_app):
    """A TRUNCATE checkpoint cannot finish while a reader holds an older snapshot: the delete answers
    at once, writes go on, and the checkpoint is retried in the background until the reader ends."""
    client, directory = sqlite_app
    engine = client.app.state.service.database.engine
    powell = create(client, "Colin Powell")
    faces = enroll(client, powell, [("Colin_Powell", 1), ("Colin_Powell", 2)])
    templates = stored_templates(directory / "facever.db", faces)
    reader = sqlite3.connect(directory / "facever.db", check_same_thread=False, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM faces").fetchone()[0] >= 2  # holds this snapshot
    ending = threading.Timer(10, reader.close)  # at the latest: a service that waits for it fails
    ending.start()
    try:
        response = client.delete(f"/v1/identities/{powell}/faces/{faces[0]}", headers=ADMIN)
        assert response.status_code == 204
        assert create(client, "Tony Blair")  # a write while the reader still holds its snapshot
        assert not ending.finished.is_set(), "the delete or the write waited for the reader"
        assert erasure_pending(engine)  # the checkpoint waits for the reader, in the background
        time.sleep(0.5)
        assert erasure_pending(engine)  # ... as long as the reader holds its snapshot
        assert "facever_erasure_pending 1.0" in client.get("/metrics").text
    finally:
        ending.cancel()
        reader.close()
    wait_for_erasure(engine)
    assert "facever_erasure_pending 0.0" in client.get("/metrics").text
    assert files_holding(directory, templates[faces[0]]) == []
    assert files_holding(directory, templates[faces[1]])


def test_postgres_vacuums_the_faces_table_after_a_delete(database_url, start_app):
    url = database_url
    if make_url(url).get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only (SQLite: the tests above)")
    with start_app(url) as client:
        schema = make_url(url).query["options"].split("=", 1)[1].split(",")[0]
        identity = create(client, "Jennifer Aniston")
        faces = enroll(client, identity, [("Jennifer_Aniston", 1), ("Jennifer_Aniston", 2)])
        assert client.delete(f"/v1/identities/{identity}/faces/{faces[0]}", headers=ADMIN).status_code == 204
        assert client.delete(f"/v1/identities/{identity}", headers=ADMIN).status_code == 204
        engine = create_engine(url)
        try:
            deadline = time.monotonic() + 20
            while True:
                with engine.connect() as connection:
                    vacuumed = connection.execute(
                        text(
                            "SELECT last_vacuum FROM pg_stat_user_tables "
                            "WHERE schemaname = :schema AND relname = 'faces'"
                        ),
                        {"schema": schema},
                    ).scalar()
                if vacuumed is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            engine.dispose()
        assert vacuumed is not None, "the faces table was not vacuumed after the delete"


def relation_pages(connection, relation: str) -> bytes:
    """Every page of a table or index as stored (pageinspect), in one byte string."""
    blocks = connection.execute(text("SELECT pg_relation_size(:r) / 8192"), {"r": relation}).scalar()
    return b"".join(
        bytes(connection.execute(text("SELECT get_raw_page(:r, :b)"), {"r": relation, "b": block}).scalar())
        for block in range(blocks)
    )


def as_indexed(template: bytes) -> bytes:
    """The vector as pgvector's cosine HNSW index stores it: normalized again (l2_normalize in vector.c:
    a double norm, each float divided by it), which may change the last bit of a unit vector's floats."""
    floats = np.frombuffer(template, "<f4")
    norm = np.sqrt(np.sum(floats.astype(np.float64) ** 2))
    return (floats / norm).astype("<f4").tobytes()


def holds(pages: bytes, template: bytes) -> bool:
    return any(needle in pages for t in (template, as_indexed(template)) for needle in needles(t))


def test_pgvector_index_forgets_a_deleted_template_after_vacuum(database_url, start_app):
    """The HNSW index keeps a deleted template's vector until VACUUM, which overwrites it with zeros
    (pgvector's hnswvacuum.c); VACUUM FULL rewrites the table too, so no page of either holds it."""
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only")
    engine = create_engine(database_url)
    try:
        with start_app(database_url) as client:  # migrated: the index exists where pgvector does
            with engine.begin() as connection:
                if connection.execute(text("SELECT to_regclass('ix_faces_embedding_hnsw')")).scalar() is None:
                    pytest.skip("pgvector is not installed (tests/app/test_gallery.py fails for that in CI)")
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA public"))
            identity = create(client, "Hugo Chavez")
            faces = enroll(client, identity, [("Hugo_Chavez", 1), ("Hugo_Chavez", 2)])
            with engine.connect() as connection:
                template = connection.execute(
                    text("SELECT embedding FROM faces WHERE id = :id"), {"id": faces[0]}
                ).scalar()
                index = relation_pages(connection, "ix_faces_embedding_hnsw")
                assert holds(index, bytes(template))  # the test can fail
            assert (
                client.delete(f"/v1/identities/{identity}/faces/{faces[0]}", headers=ADMIN).status_code == 204
            )
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM faces"))
                index = relation_pages(connection, "ix_faces_embedding_hnsw")
                assert not holds(index, bytes(template))
                connection.execute(text("VACUUM FULL faces"))
                pages = relation_pages(connection, "faces") + relation_pages(
                    connection, "ix_faces_embedding_hnsw"
                )
                assert not holds(pages, bytes(template))
    finally:
        engine.dispose()
