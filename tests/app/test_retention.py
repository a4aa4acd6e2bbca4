"""Retention (issue 19, point 3): an identity past its expires_at, or FACEVER_IDENTITY_RETENTION_DAYS
after its creation, is erased by the service itself, through DELETE's erasure path, with one audit
record, even when several processes sweep at once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
from conftest import make_settings
from governance_samples import holds
from live_server import LiveServer
from service_samples import ADMIN, VERIFY, create, enroll, lfw
from sqlalchemy import select

from facever.app import retention
from facever.app.db.models import AuditRecord, Face, Identity
from facever.app.db.session import Database


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def expiry_records(database: Database, identity_id: int) -> list[AuditRecord]:
    with database.sessions() as session:
        records = session.scalars(select(AuditRecord).where(AuditRecord.operation == "expire_identity"))
        return [r for r in records if r.identity_ids == [identity_id]]


def test_expires_at_is_checked_at_creation(database_url, start_app):
    with start_app(database_url, identity_retention_days=30) as client:
        for expires_at, why in [
            ((datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "in the future"),
            ((datetime.now(UTC) + timedelta(days=31)).isoformat(), "retention limit of 30 days"),
            ("9999-12-31T23:59:59-14:00", "out of range"),
        ]:
            response = client.post(
                "/v1/identities", json={"name": "x", "expires_at": expires_at}, headers=ADMIN
            )
            assert response.status_code == 422 and why in response.json()["error"]["message"]
        naive = client.post(
            "/v1/identities", json={"name": "x", "expires_at": "2030-01-01T00:00:00"}, headers=ADMIN
        )
        assert naive.status_code == 422 and naive.json()["error"]["code"] == "invalid_request"

        chosen = datetime.now(UTC) + timedelta(days=2)
        body = client.post(
            "/v1/identities", json={"name": "short", "expires_at": chosen.isoformat()}, headers=ADMIN
        ).json()
        assert datetime.fromisoformat(body["expires_at"]) == chosen
        body = client.post("/v1/identities", json={"name": "policy"}, headers=ADMIN).json()
        created = datetime.fromisoformat(body["created_at"])
        assert datetime.fromisoformat(body["expires_at"]) == created + timedelta(days=30)
        listed = client.get(f"/v1/identities/{body['id']}", headers=ADMIN).json()
        assert listed["expires_at"] == body["expires_at"]
    with start_app(database_url) as client:  # no policy: kept until deleted
        assert (
            client.post("/v1/identities", json={"name": "kept"}, headers=ADMIN).json()["expires_at"] is None
        )


def test_an_expired_identity_is_erased_and_audited_without_a_request(database_url, start_app, tmp_path):
    with start_app(database_url, retention_sweep_interval=0.2) as client:
        database = client.app.state.service.database
        in_new_york = (datetime.now(UTC) + timedelta(seconds=3)).astimezone(timezone(timedelta(hours=-5)))
        leaving = create(client, "Colin Powell", expires_at=in_new_york.isoformat())  # erased in 3 s, not 5 h
        enroll(client, leaving, [("Colin_Powell", 1), ("Colin_Powell", 2)])
        staying = create(client, "Colin Powell (kept)")
        enroll(client, staying, [("Colin_Powell", 3)])
        sqlite_file = database.engine.url.database if database.backend == "sqlite" else None
        with database.sessions() as session:
            templates = session.scalars(select(Face.embedding).where(Face.identity_id == leaving)).all()
        assert len(templates) == 2
        if sqlite_file:  # the search below finds them while they are stored
            assert all(
                any(holds(p.read_bytes(), t) for p in Path(sqlite_file).parent.iterdir()) for t in templates
            )

        deadline = time.monotonic() + 30  # no request is made while waiting: the database is watched
        while time.monotonic() < deadline:
            with database.sessions() as session:
                if session.get(Identity, leaving) is None:
                    break
            time.sleep(0.2)
        with database.sessions() as session:
            assert session.get(Identity, leaving) is None, "the expired identity was not erased"
            assert session.scalars(select(Face.id).where(Face.identity_id == leaving)).all() == []
            assert session.get(Identity, staying) is not None

        (record,) = expiry_records(database, leaving)
        assert record.api_key_id is None and record.api_key_name.startswith("facever retention")
        assert record.decision == "erased" and record.detail["reason"] == "expires_at"
        assert record.detail["templates_erased"] == 2

        if sqlite_file:  # erased like DELETE erases: no file keeps the templates
            folder = Path(sqlite_file).parent
            for template in templates:
                assert not any(holds(p.read_bytes(), template) for p in folder.iterdir())

        assert client.get(f"/v1/identities/{leaving}", headers=ADMIN).status_code == 404
        found = client.post(
            "/v1/identify",
            files={"image": ("p.jpg", lfw("Colin_Powell", 4))},
            data={"include_below_threshold": "true"},
            headers=VERIFY,
        ).json()
        assert leaving not in [m["identity"]["id"] for m in found["matches"]]
        assert staying in [m["identity"]["id"] for m in found["matches"]]


def test_retention_days_erase_identities_created_that_long_ago(database_url, start_app):
    with start_app(database_url) as client:
        database = client.app.state.service.database
        old = create(client, "Serena Williams")
        enroll(client, old, [("Serena_Williams", 1)])
        with database.sessions() as session:
            created = session.get(Identity, old).created_at
        settings = make_settings(database_url, identity_retention_days=7)

        early = retention.sweep(settings, database, now=created + timedelta(days=6))
        assert old not in early.erased_identities
        late = retention.sweep(settings, database, now=created + timedelta(days=7, seconds=1))
        assert old in late.erased_identities
        (record,) = expiry_records(database, old)
        assert record.detail["reason"] == "FACEVER_IDENTITY_RETENTION_DAYS"
        assert client.get(f"/v1/identities/{old}", headers=ADMIN).status_code == 404


def test_processes_sweeping_at_once_erase_and_record_each_identity_once(database_url, start_app):
    with start_app(database_url) as client:
        expiring = [create(client, f"person {n}", expires_at=soon(60)) for n in range(6)]
    settings = make_settings(database_url)
    later = datetime.now(UTC) + timedelta(hours=1)
    databases = [Database(database_url) for _ in range(4)]  # as four server processes
    results: list[retention.SweepResult] = []
    start = threading.Barrier(len(databases))

    def sweep(database: Database) -> None:
        start.wait()
        results.append(retention.sweep(settings, database, now=later))

    threads = [threading.Thread(target=sweep, args=(database,)) for database in databases]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        erased = [identity for result in results for identity in result.erased_identities]
        assert len(results) == len(databases)
        assert sorted(erased) == sorted(expiring)  # each by exactly one of them
        for identity in expiring:
            assert len(expiry_records(databases[0], identity)) == 1
        with databases[0].sessions() as session:
            left = session.scalars(select(Identity.id).where(Identity.id.in_(expiring))).all()
            assert left == []
    finally:
        for database in databases:
            database.dispose()


def test_a_server_of_two_processes_erases_and_records_each_expired_identity_once(database_url, tmp_path):
    """Both worker processes sweep every 0.2 s, racing for the same identities."""
    settings = {"database_url": database_url, "workers": "2", "retention_sweep_interval": "0.2"}
    with LiveServer(tmp_path, **settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert len(server.worker_pids()) >= 2  # the two workers (and a helper process of uvicorn)
        expiring = []
        for n in range(5):
            response = client.post("/v1/identities", json={"name": f"visitor {n}", "expires_at": soon(4)})
            assert response.status_code == 201, response.text
            expiring.append(response.json()["id"])
        kept = client.post("/v1/identities", json={"name": "staff"}).json()["id"]

        database = Database(database_url)
        try:
            deadline = time.monotonic() + 60  # watched in the database: no request while waiting
            while time.monotonic() < deadline:
                with database.sessions() as session:
                    if not session.scalars(select(Identity.id).where(Identity.id.in_(expiring))).all():
                        break
                time.sleep(0.2)
            time.sleep(1)  # a few more sweeps by both processes: they must not record anything again
            with database.sessions() as session:
                assert session.scalars(select(Identity.id).where(Identity.id.in_(expiring))).all() == []
                assert session.get(Identity, kept) is not None
            for identity in expiring:
                assert len(expiry_records(database, identity)) == 1, identity
        finally:
            database.dispose()
        erased = client.get("/v1/audit", params={"operation": "expire_identity"}).json()["items"]
        assert sorted(i for r in erased for i in r["identity_ids"] if i in expiring) == sorted(expiring)
