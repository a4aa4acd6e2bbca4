"""Engine and sessions for the configured database (SQLite in WAL mode, or PostgreSQL)."""

from __future__ import annotations

import logging
import threading
import time
import weakref

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def create_db_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        # timeout: how long a writer waits for another writer's lock before "database is locked".
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer nor each other, which the replicas' polling relies on.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Erasure: deleted rows (templates) are overwritten with zeros in the page, not just unlinked.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


log = logging.getLogger("facever.db")

# A TRUNCATE checkpoint waits (busy timeout) for readers on older snapshots; if it still reports
# "busy", it is tried again this many times, a little later each time.
CHECKPOINT_ATTEMPTS = 20


def _checkpoint_truncate(engine: Engine) -> bool:
    """Copy every WAL frame into the database file (where secure_delete has zeroed what was deleted),
    sync it, and truncate the WAL to zero bytes, so that no file keeps an old copy of a deleted row.
    True when done; False when readers kept it from finishing (the bytes stay until the next one)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for attempt in range(CHECKPOINT_ATTEMPTS):
            busy, _log_frames, _checkpointed = connection.exec_driver_sql(
                "PRAGMA wal_checkpoint(TRUNCATE)"
            ).one()
            if not busy:
                return True
            time.sleep(0.01 * (attempt + 1))
    log.warning(
        "WAL checkpoint after a delete was kept busy by readers; deleted rows stay in the -wal file "
        "until the next checkpoint"
    )
    return False


class _Vacuum:
    """PostgreSQL: ``VACUUM faces`` in a background thread after deletions, one at a time per process
    (a delete during a run asks for one more run, which then covers it). Best effort: a failure (no
    permission, server gone) is logged, never raised to a request."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.lock = threading.Lock()
        self.running = False
        self.again = False

    def request(self) -> None:
        with self.lock:
            if self.running:
                self.again = True
                return
            self.running = True
        threading.Thread(target=self._run, name="facever-vacuum", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.exec_driver_sql("VACUUM faces")
            except Exception as exc:  # noqa: BLE001 - best effort, see the class
                log.warning("VACUUM faces after a delete failed: %s: %s", type(exc).__name__, exc)
            with self.lock:
                if not self.again:
                    self.running = False
                    return
                self.again = False


_vacuums: weakref.WeakKeyDictionary[Engine, _Vacuum] = weakref.WeakKeyDictionary()
_vacuums_lock = threading.Lock()


def erase_deleted(engine: Engine) -> None:
    """Call after a committed delete of templates, so that no database file keeps their bytes.
    SQLite: a TRUNCATE checkpoint, done before returning. PostgreSQL: ``VACUUM faces`` in the
    background (dead tuples become reusable free space; see the README's erasure section)."""
    backend = engine.dialect.name
    if backend == "sqlite":
        _checkpoint_truncate(engine)
    elif backend == "postgresql":
        with _vacuums_lock:
            vacuum = _vacuums.get(engine) or _vacuums.setdefault(engine, _Vacuum(engine))
        vacuum.request()


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = create_db_engine(url)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
