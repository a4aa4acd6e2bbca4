"""Templates encrypted at rest (issue 19, point 1): with a key, no stored template is in clear in the
SQLite files or a PostgreSQL dump (searched byte-wise, as test_erasure.py does), identify and verify
answer as without a key, each ciphertext is bound to its row, and a wrong or missing key stops the
start-up with a message naming it."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import POSTGRES_URL
from governance_samples import KEY_A, KEY_A_BYTES, KEY_A_ID, KEY_B, KEY_B_ID, RING, holds
from service_samples import ADMIN, VERIFY, create, enroll, lfw
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from facever.app.core.config import Settings
from facever.app.db.session import Database
from facever.app.stored_embeddings import TemplateCodec
from facever.app.template_crypto import (
    KeyRing,
    TemplateDecryptionError,
    TemplateKeyError,
    key_ring,
    new_key,
    parse_key,
)
from facever.app.template_keys import rotate

PEOPLE = {
    "George W. Bush": [("George_W_Bush", n) for n in (1, 2, 3)],
    "Serena Williams": [("Serena_Williams", n) for n in (1, 2)],
    "Colin Powell": [("Colin_Powell", n) for n in (1, 2)],
}
PROBES = [("George_W_Bush", 10), ("Serena_Williams", 5), ("Colin_Powell", 7), ("Jennifer_Aniston", 1)]


# -- the cipher and the settings -------------------------------------------------------------------


def test_each_ciphertext_is_bound_to_its_row_and_key():
    ring = KeyRing.of(KEY_A_BYTES)
    plain = np.arange(128, dtype="<f4").tobytes()
    blob, key = ring.encrypt(plain, face_id=7, identity_id=3)
    assert key == KEY_A_ID and plain not in blob and len(blob) == 12 + len(plain) + 16
    assert ring.decrypt(blob, key, 7, 3) == plain
    assert ring.encrypt(plain, 7, 3)[0] != blob  # a fresh nonce each time
    with pytest.raises(TemplateDecryptionError, match="face 8"):
        ring.decrypt(blob, key, 8, 3)  # copied to another row
    with pytest.raises(TemplateDecryptionError):
        ring.decrypt(blob, key, 7, 4)  # the row moved to another identity
    with pytest.raises(TemplateDecryptionError):
        ring.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), key, 7, 3)  # altered
    with pytest.raises(TemplateKeyError, match=KEY_B_ID):
        ring.decrypt(blob, KEY_B_ID, 7, 3)  # a key that is not configured


def test_key_settings_are_checked_and_name_the_setting(tmp_path):
    assert key_ring(Settings()) is None
    assert key_ring(Settings(template_key=new_key())) is not None
    with pytest.raises(TemplateKeyError, match="FACEVER_TEMPLATE_KEY is not a template key"):
        key_ring(Settings(template_key="correct horse battery staple"))
    with pytest.raises(TemplateKeyError, match="key 1 of FACEVER_TEMPLATE_PREVIOUS_KEYS"):
        key_ring(Settings(template_key=KEY_A, template_previous_keys="c2hvcnQ="))
    with pytest.raises(TemplateKeyError, match="no current key"):
        key_ring(Settings(template_previous_keys=KEY_A))
    key_file = tmp_path / "template.key"
    key_file.write_text(f"{KEY_B}\n\n{KEY_A}\n")
    ring = key_ring(Settings(template_key_file=key_file))
    assert ring is not None and ring.current_id == KEY_B_ID and set(ring.keys) == {KEY_A_ID, KEY_B_ID}
    with pytest.raises(TemplateKeyError, match="not both"):
        key_ring(Settings(template_key=KEY_A, template_key_file=key_file))
    with pytest.raises(TemplateKeyError, match="cannot be read"):
        key_ring(Settings(template_key_file=tmp_path / "missing.key"))


# -- an encrypted and a clear service, side by side ------------------------------------------------


def stored_rows(database: Path) -> list[tuple[int, int, bytes, str | None]]:
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "SELECT id, identity_id, embedding, key_id FROM faces ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    return [(face_id, identity_id, bytes(blob), key) for face_id, identity_id, blob, key in rows]


def files_holding(directory: Path, template: bytes) -> list[str]:
    return [path.name for path in sorted(directory.iterdir()) if holds(path.read_bytes(), template)]


@pytest.fixture(scope="module")
def apps(tmp_path_factory, start_app):
    """Two services enrolled with the same photos: one with FACEVER_TEMPLATE_KEY, one without."""
    encrypted_dir, clear_dir = tmp_path_factory.mktemp("encrypted"), tmp_path_factory.mktemp("clear")
    with (
        start_app(f"sqlite:///{encrypted_dir / 'facever.db'}", template_key=KEY_A) as encrypted,
        start_app(f"sqlite:///{clear_dir / 'facever.db'}") as clear,
    ):
        ids = {}
        for name, photos in PEOPLE.items():
            ids[name] = [create(client, name) for client in (encrypted, clear)]
            for client, identity_id in zip((encrypted, clear), ids[name], strict=True):
                enroll(client, identity_id, photos)
        yield {"encrypted": (encrypted, encrypted_dir), "clear": (clear, clear_dir), "ids": ids}


def test_no_sqlite_file_holds_a_template_in_clear(apps):
    encrypted, directory = apps["encrypted"]
    rows = stored_rows(directory / "facever.db")
    assert len(rows) == sum(len(photos) for photos in PEOPLE.values())
    assert {key for *_, key in rows} == {KEY_A_ID}
    dim = encrypted.app.state.service.dim
    for face_id, identity_id, blob, key in rows:
        plain = RING.decrypt(blob, key, face_id, identity_id)
        assert len(plain) == 4 * dim
        assert files_holding(directory, plain) == [], f"face {face_id}'s template is in clear"

    # The same search finds the clear service's templates: it would have found them.
    _, clear_dir = apps["clear"]
    clear_rows = stored_rows(clear_dir / "facever.db")
    assert {key for *_, key in clear_rows} == {None}
    for _, _, plain, _ in clear_rows:
        assert files_holding(clear_dir, plain)
    # ... and they are the very templates the encrypted service stored (same photos, same model).
    decrypted = np.stack([np.frombuffer(RING.decrypt(b, k, f, i), "<f4") for f, i, b, k in rows])
    in_clear = np.stack([np.frombuffer(plain, "<f4") for _, _, plain, _ in clear_rows])
    np.testing.assert_allclose(decrypted, in_clear, atol=1e-6)


def test_identify_and_verify_answer_as_without_a_key(apps):
    encrypted, _ = apps["encrypted"]
    clear, _ = apps["clear"]
    names = {name: ids for name, ids in apps["ids"].items()}
    for person, number in PROBES:
        image = {"image": (f"{person}.jpg", lfw(person, number))}
        answers = [
            client.post("/v1/identify", files=image, data={"include_below_threshold": "true"}, headers=VERIFY)
            for client in (encrypted, clear)
        ]
        assert [a.status_code for a in answers] == [200, 200], answers[0].text
        ranked = [
            [(m["identity"]["name"], round(m["score"], 5)) for m in a.json()["matches"]] for a in answers
        ]
        assert ranked[0] == ranked[1] and len(ranked[0]) == len(PEOPLE)
        for encrypted_id, clear_id in names.values():
            verdicts = [
                client.post(f"/v1/identities/{identity_id}/verify", files=image, headers=VERIFY).json()
                for client, identity_id in ((encrypted, encrypted_id), (clear, clear_id))
            ]
            assert verdicts[0]["verified"] == verdicts[1]["verified"]
            assert verdicts[0]["score"] == pytest.approx(verdicts[1]["score"], abs=1e-5)
    # A real match, not only agreement: the probe of Bush is Bush.
    bush = encrypted.post(
        "/v1/identify", files={"image": ("b.jpg", lfw("George_W_Bush", 10))}, headers=VERIFY
    ).json()
    assert bush["matches"][0]["identity"]["name"] == "George W. Bush"


def test_start_up_refuses_a_missing_or_wrong_key(apps, start_app):
    _, directory = apps["encrypted"]
    url = f"sqlite:///{directory / 'facever.db'}"
    with pytest.raises(TemplateKeyError, match=f"{KEY_A_ID}.*no template key is configured"):
        with start_app(url):
            pass
    with pytest.raises(TemplateKeyError, match=KEY_A_ID):
        with start_app(url, template_key=KEY_B):  # another key: its id is not the rows'
            pass
    with pytest.raises(TemplateKeyError, match="FACEVER_TEMPLATE_KEY is not a template key"):
        with start_app(url, template_key="not-a-key"):
            pass


def test_start_up_says_how_templates_are_stored(apps, start_app, caplog):
    _, directory = apps["encrypted"]
    caplog.set_level(logging.INFO, logger="facever.app")
    with start_app(f"sqlite:///{directory / 'facever.db'}", template_key=KEY_B, template_previous_keys=KEY_A):
        pass
    assert (
        f"current key {KEY_B_ID}" in caplog.text
        and "0 stored in clear and 7 under a previous key" in caplog.text
    )
    caplog.clear()
    _, clear_dir = apps["clear"]
    with start_app(f"sqlite:///{clear_dir / 'facever.db'}"):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("templates are stored IN CLEAR (7 stored)" in line for line in warnings), warnings


# -- PostgreSQL: a dump -----------------------------------------------------------------------------


def pg_dump(url: str) -> bytes:
    """A plain data dump of the test's schema, as an operator's backup would be."""
    server = make_url(POSTGRES_URL)
    schema = make_url(url).query["options"].split("=", 1)[1].split(",")[0]  # search_path: ours, public
    command = ["pg_dump", "-h", server.host or "127.0.0.1", "-p", str(server.port or 5432)]
    command += ["-U", server.username or "postgres", "-n", schema, "--data-only", server.database or "test"]
    return subprocess.run(command, check=True, capture_output=True, timeout=120).stdout


def test_a_postgres_dump_holds_no_template_in_clear(database_url, start_app):
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only (SQLite: the file search above)")
    with start_app(database_url) as clear:  # before a key was set: stored in clear
        assert clear.get("/v1/info", headers=VERIFY).json()["gallery"]["encrypted_at_rest"] is False
        powell = create(clear, "Colin Powell")
        enroll(clear, powell, PEOPLE["Colin Powell"])
    with start_app(database_url, template_key=KEY_A) as encrypted:
        assert encrypted.get("/v1/info", headers=VERIFY).json()["gallery"]["encrypted_at_rest"] is True
        bush = create(encrypted, "George W. Bush")
        enroll(encrypted, bush, PEOPLE["George W. Bush"])
        assert encrypted.get(f"/v1/identities/{bush}", headers=ADMIN).json()["face_count"] == 3

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, identity_id, embedding, key_id FROM faces")).all()
    finally:
        engine.dispose()
    clear_rows = [bytes(r.embedding) for r in rows if r.key_id is None]
    encrypted_rows = [
        RING.decrypt(bytes(r.embedding), r.key_id, r.id, r.identity_id) for r in rows if r.key_id
    ]
    assert len(clear_rows) == 2 and len(encrypted_rows) == 3

    dump = pg_dump(database_url)
    assert b"COPY" in dump and all(holds(dump, plain) for plain in clear_rows)  # the search finds clear ones
    assert not any(holds(dump, plain) for plain in encrypted_rows)

    # Rotating encrypts the rows written before the key too.
    database = Database(database_url)
    try:
        result = rotate(database, TemplateCodec(KeyRing.of(KEY_A_BYTES)))
    finally:
        database.dispose()
    assert result.rotated == 2 and result.remaining == {}
    dump = pg_dump(database_url)
    assert not any(holds(dump, plain) for plain in clear_rows + encrypted_rows)


# -- the command line ------------------------------------------------------------------------------


def facever(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACEVER_")}
    environment |= {f"FACEVER_{name.upper()}": value for name, value in settings.items()}
    return subprocess.run(
        [sys.executable, "-m", "facever.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=environment,
    )


def test_the_key_commands_and_serve_end_in_one_clear_line(apps, tmp_path):
    made = [facever("keys", "new-template-key", cwd=tmp_path) for _ in range(2)]
    assert [m.returncode for m in made] == [0, 0]
    keys = [m.stdout.strip() for m in made]
    assert keys[0] != keys[1] and all(KeyRing.of(parse_key(k, "test")) for k in keys)

    _, directory = apps["encrypted"]
    url = f"sqlite:///{directory / 'facever.db'}"
    for args, settings, says in [
        (("keys", "rotate-templates"), {}, "set FACEVER_TEMPLATE_KEY"),
        (("serve", "--port", "9"), {}, f"encrypted under key ids {KEY_A_ID}"),
        (("serve", "--port", "9"), {"template_key": KEY_B}, f"encrypted under key ids {KEY_A_ID}"),
        (("serve", "--port", "9"), {"template_key": "xyz"}, "FACEVER_TEMPLATE_KEY is not a template key"),
    ]:
        result = facever(*args, cwd=tmp_path, database_url=url, **settings)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert says in result.stderr and "Traceback" not in result.stderr, result.stderr
