"""A real server against a second process holding the SQLite database: a reader (a backup, an open
``sqlite3`` shell) delays neither deletions nor other writes; a writer holding the lock, or a full
disk, gives a 503 with a code and ``Retry-After`` (never a 500), ``/readyz`` is 503 meanwhile and 200
again once the database can be written; an answer after which the server closes the connection says
``Connection: close``."""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from live_server import LiveServer, closed_by_server
from service_samples import lfw
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from test_erasure import files_holding, stored_templates

from facever.app.db.errors import retryable

# A second process that opens the database, starts a transaction (BEGIN: a read snapshot; BEGIN
# IMMEDIATE: the write lock), reads, says "holding", and holds it until its stdin is closed.
HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute(sys.argv[2])
connection.execute("SELECT count(*) FROM faces").fetchone()
print("holding", flush=True)
sys.stdin.read()
connection.close()
"""


@contextmanager
def holding(database: Path, begin: str):
    """A second process holding a transaction on ``database`` until the block ends; yields it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database), begin],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "holding"
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def create(client: httpx.Client, name: str) -> httpx.Response:
    return client.post("/v1/identities", json={"name": name})


def enroll(client: httpx.Client, identity_id: int, person: str, number: int) -> httpx.Response:
    return client.post(
        f"/v1/identities/{identity_id}/faces",
        files=[("images", (f"{person}_{number}.jpg", lfw(person, number)))],
    )


def created(response: httpx.Response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def assert_retryable(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == code
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers.get("connection", "").lower() != "close"


def wait_for(predicate, within_s: float = 20, pause_s: float = 0.1) -> bool:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(pause_s)
    return True


@pytest.fixture
def server(tmp_path):
    with LiveServer(tmp_path, database_busy_timeout="1") as server:
        yield server, tmp_path / "live.db"


@pytest.mark.slow
def test_a_reader_delays_neither_a_delete_nor_other_writes(server):
    server, database = server
    with httpx.Client(base_url=server.url, timeout=120) as client:
        powell = created(create(client, "Colin Powell"))["id"]
        faces = [created(enroll(client, powell, "Colin_Powell", n))["results"][0]["face_id"] for n in (1, 2)]
        blair = created(create(client, "Tony Blair"))["id"]
        templates = stored_templates(database, faces)

        with holding(database, "BEGIN") as reader, ThreadPoolExecutor(8) as pool:
            deletion = pool.submit(client.delete, f"/v1/identities/{powell}/faces/{faces[0]}")
            writes = [pool.submit(create, client, f"Person {n}") for n in range(3)]
            writes += [pool.submit(enroll, client, blair, "Tony_Blair", n) for n in (1, 2, 3)]
            # Before the fix the delete's checkpoint waited for the reader while holding the write
            # lock: nothing below finished until the reader ended (or failed with 500 after 30 s).
            done, _ = wait([deletion, *writes], timeout=30)
            still_reading = reader.poll() is None
        assert len(done) == 7, "a request waited for the reader"
        assert still_reading
        assert deletion.result().status_code == 204
        assert [w.result().status_code for w in writes] == [201] * 6, [w.result().text for w in writes]

        # Erasure, once the reader has ended: the checkpoint is retried in the background.
        assert wait_for(lambda: files_holding(database.parent, templates[faces[0]]) == []), (
            "the deleted template stayed in the database files after the reader ended"
        )
        assert files_holding(database.parent, templates[faces[1]])
        assert client.get(f"/v1/identities/{blair}").json()["face_count"] == 3


@pytest.mark.slow
def test_a_held_write_lock_is_a_503_database_busy_and_readyz_unready_until_released(server):
    server, database = server
    with httpx.Client(base_url=server.url, timeout=120) as client:
        created(create(client, "Colin Powell"))
        with holding(database, "BEGIN IMMEDIATE"):
            assert_retryable(create(client, "Tony Blair"), "database_busy")
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert "database_busy" in ready.json()["error"]["message"]
        assert client.get("/readyz").status_code == 200
        created(create(client, "Tony Blair"))
        names = [i["name"] for i in client.get("/v1/identities").json()["items"]]
        assert names == ["Colin Powell", "Tony Blair"]


def raw_request(sock: socket.socket, method: str, path: str, body: bytes = b"") -> bytes:
    """Send one request on a keep-alive connection and read its whole answer (Content-Length)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    header, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in header.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return header


@pytest.mark.slow
def test_an_unexpected_database_error_says_connection_close_before_closing_it(server):
    """A 500 ends the connection: the answer says so, and the server does close it."""
    server, database = server
    with httpx.Client(base_url=server.url, timeout=120) as client:
        identity = created(create(client, "Colin Powell"))["id"]
    connection = sqlite3.connect(database)
    connection.execute("DROP TABLE gallery_changes")  # every enrollment now fails: a 500
    connection.close()
    with server.connect() as sock:
        boundary = "b0undary"
        image = lfw("Colin_Powell", 1)
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\n'
                f"Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        sock.sendall(
            (
                f"POST /v1/identities/{identity}/faces HTTP/1.1\r\nHost: test\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        header = answer.partition(b"\r\n\r\n")[0].lower()
        assert header.startswith(b"http/1.1 500"), header
        assert b"\r\nconnection: close" in header
        assert closed_by_server(sock, within=10)


# -- a full disk -----------------------------------------------------------------------------------


@contextmanager
def small_filesystem(folder: Path, size: str):
    """A tmpfs of ``size`` mounted at ``folder`` (root only)."""
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=False)
    if result.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until its filesystem has no room left."""
    block = bytes(1 << 16)
    with path.open("wb", buffering=0) as file:
        while True:
            try:
                file.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        while True:  # the last few bytes, smaller than a block
            try:
                file.write(bytes(512))
            except OSError:
                break
        os.fsync(file.fileno())


@pytest.mark.slow
def test_a_full_disk_is_a_503_storage_full_and_readyz_unready_until_space_returns(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with small_filesystem(tmp_path / "disk", "16m") as disk:
        database = disk / "facever.db"
        with (
            LiveServer(tmp_path, database_url=f"sqlite:///{database}") as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            powell = created(create(client, "Colin Powell"))["id"]
            created(enroll(client, powell, "Colin_Powell", 1))
            assert client.get("/readyz").status_code == 200

            fill(disk / "filler")
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert "storage_full" in ready.json()["error"]["message"]
            answers = [create(client, f"Person {n}") for n in range(5)]
            answers += [enroll(client, powell, "Colin_Powell", n) for n in (2, 3, 4)]
            assert all(a.status_code in (201, 503) for a in answers), [a.text for a in answers]
            refused = [a for a in answers if a.status_code == 503]
            assert refused, "every write succeeded on a full disk: the test did not fill it"
            for answer in refused:
                assert_retryable(answer, "storage_full")
            # The connection stays usable after a 503 (before the fix a 500 closed it unannounced).
            with server.connect() as sock:
                assert raw_request(sock, "POST", "/v1/identities", b'{"name": "x"}').startswith(
                    b"HTTP/1.1 503"
                )
                assert raw_request(sock, "GET", "/healthz").startswith(b"HTTP/1.1 200")

            (disk / "filler").unlink()
            assert wait_for(lambda: client.get("/readyz").status_code == 200, within_s=10)
            created(create(client, "Tony Blair"))
            created(enroll(client, powell, "Colin_Powell", 5))
            stored = client.get(f"/v1/identities/{powell}").json()["face_count"]
            acknowledged = 2 + sum(1 for a in answers[5:] if a.status_code == 201)
            assert stored == acknowledged


def test_a_full_database_under_max_page_count_is_a_503_storage_full(tmp_path, start_app):
    """SQLite's own size limit, set on every connection of the service: SQLITE_FULL without root."""
    with start_app(f"sqlite:///{tmp_path / 'facever.db'}", auth="disabled") as client:
        engine = client.app.state.service.database.engine
        identity = client.post("/v1/identities", json={"name": "Colin Powell"}).json()["id"]
        with engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar()

        def limit(dbapi_connection, _record) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

        event.listen(engine, "connect", limit)
        engine.dispose()  # every connection from now on has the limit
        try:
            assert client.get("/readyz").status_code == 503
            answers = [
                client.post(
                    f"/v1/identities/{identity}/faces",
                    files=[("images", ("a.jpg", lfw("Colin_Powell", n % 4 + 1)))],
                )
                for n in range(12)
            ]
            statuses = [a.status_code for a in answers]
            assert 503 in statuses and set(statuses) <= {201, 503}, statuses
            refused = answers[statuses.index(503)]
            assert refused.json()["error"]["code"] == "storage_full"
            assert int(refused.headers["Retry-After"]) >= 1
        finally:
            event.remove(engine, "connect", limit)
            engine.dispose()
        assert client.get("/readyz").status_code == 200
        assert client.get(f"/v1/identities/{identity}").json()["face_count"] == statuses.count(201)


# -- PostgreSQL ------------------------------------------------------------------------------------


def test_postgres_lock_timeout_is_a_503_database_busy(database_url, start_app):
    """Another session holding the gallery's version row: a write waits FACEVER_DATABASE_BUSY_TIMEOUT
    (PostgreSQL's lock_timeout) and gets 503 database_busy, then works once the lock is released."""
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only (SQLite: the tests above)")
    with start_app(database_url, auth="disabled", database_busy_timeout=1) as client:
        identity = client.post("/v1/identities", json={"name": "Colin Powell"}).json()["id"]
        engine = create_engine(database_url)
        try:
            with engine.connect() as holder:
                holder.execute(text("SELECT version FROM gallery_state WHERE id = 1 FOR UPDATE"))
                answer = client.post(
                    f"/v1/identities/{identity}/faces", files=[("images", ("a.jpg", lfw("Colin_Powell", 1)))]
                )
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "database_busy"
                assert answer.headers["Retry-After"] == "1"
                holder.rollback()
        finally:
            engine.dispose()
        answer = client.post(
            f"/v1/identities/{identity}/faces", files=[("images", ("a.jpg", lfw("Colin_Powell", 1)))]
        )
        assert answer.status_code == 201, answer.text


def test_postgres_disk_full_is_storage_full():
    """The driver's DiskFull (SQLSTATE 53100), as SQLAlchemy wraps it, is answered 503 storage_full."""
    error = OperationalError("INSERT ...", {}, psycopg.errors.DiskFull("could not extend file"))
    condition = retryable(error)
    assert condition is not None and condition.code == "storage_full"
    other = OperationalError("SELECT ...", {}, psycopg.errors.UndefinedTable("no such table"))
    assert retryable(other) is None


def test_a_500_from_any_unexpected_error_says_connection_close(sqlite_client):
    """Starlette raises the error again after the 500, and uvicorn then closes the connection."""

    def broken() -> None:
        raise RuntimeError("a bug")

    sqlite_client.app.add_api_route("/test-broken", broken)
    # Without `with`: no second lifespan; the running app's is used.
    answer = TestClient(sqlite_client.app, raise_server_exceptions=False).get("/test-broken")
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert answer.headers["connection"] == "close"
