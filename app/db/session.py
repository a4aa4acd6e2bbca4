"""Engine and sessions for the configured database (SQLite in WAL mode, or PostgreSQL)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from facever.app import metrics
from facever.app.db.errors import Retryable
from facever.app.db.writable import write_problem

# How long a write waits for another writer's lock (SQLite's busy timeout, PostgreSQL's lock_timeout)
# unless the settings say otherwise; past it the request is answered 503 database_busy.
DEFAULT_BUSY_TIMEOUT_S = 10.0


def create_db_engine(url: str, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    lock_timeout = partial(_postgres_lock_timeout, milliseconds=round(busy_timeout_s * 1000))
    event.listen(engine, "connect", lock_timeout)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer nor each other, which the replicas' polling relies on.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Erasure: deleted rows (templates) are overwritten with zeros in the page, not just unlinked.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _postgres_lock_timeout(dbapi_connection, _record, milliseconds: int) -> None:
    """A write waiting for a row lock gives up like SQLite's busy timeout (55P03, 503 database_busy)
    instead of waiting for ever. Committed, or the pool's rollback on check-in would undo the SET."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {int(milliseconds)}")
    dbapi_connection.commit()


log = logging.getLogger("facever.db")

# The erasure checkpoint holds SQLite's write lock while it waits for readers: it waits this long at
# most per attempt, so that a reader (a backup, an open sqlite3 shell) delays writers by no more.
CHECKPOINT_BUSY_MS = 100
# Seconds between background attempts while readers keep the checkpoint from finishing: the first
# retry comes soon (the service's own reads last milliseconds), later ones once a second.
CHECKPOINT_RETRY_S = (0.05, 0.2, 0.5, 1.0)


def _checkpoint_truncate(engine: Engine) -> bool:
    """Copy every WAL frame into the database file (where secure_delete has zeroed what was deleted),
    sync it, and truncate the WAL to zero bytes, so that no file keeps an old copy of a deleted row.
    True when done; False when a reader on an older snapshot (or a writer) kept it from finishing
    within CHECKPOINT_BUSY_MS."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        timeout_ms = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_MS}")
        try:
            busy, _log_frames, _checkpointed = connection.exec_driver_sql(
                "PRAGMA wal_checkpoint(TRUNCATE)"
            ).one()
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(timeout_ms or 0)}")
    return not busy


class _Background:
    """Runs ``job`` in a background thread after deletions, one run at a time per engine (a delete
    during a run asks for one more run, which then covers it). ``job`` returns when it is done or
    ``stopped`` is set; a failure is logged, never raised to a request."""

    def __init__(self, engine: Engine, job: Callable[[Engine, threading.Event], None], name: str):
        self.engine = engine
        self.job = job
        self.name = name
        self.lock = threading.Lock()
        self.running = False
        self.again = False
        self.stopped = threading.Event()
        self.idle = threading.Event()
        self.idle.set()

    def request(self) -> None:
        with self.lock:
            if self.running:
                self.again = True
                return
            self.running = True
            self.idle.clear()
            metrics.ERASURE_PENDING.set(1)
        threading.Thread(target=self._run, name=self.name, daemon=True).start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.job(self.engine, self.stopped)
            except Exception as exc:  # noqa: BLE001 - best effort, see the class
                log.warning("%s after a delete failed: %s: %s", self.name, type(exc).__name__, exc)
            with self.lock:
                if not self.again:
                    break
                self.again = False
        with self.lock:
            self.running = False
            self.idle.set()
            metrics.ERASURE_PENDING.set(0)


def _erase_sqlite(engine: Engine, stopped: threading.Event) -> None:
    """Retry the TRUNCATE checkpoint until readers on older snapshots have ended."""
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            done = _checkpoint_truncate(engine)
        except OperationalError as exc:  # e.g. the disk is full: tried again like a busy one
            log.warning("erasure checkpoint failed: %s", exc)
            done = False
        if done:
            if attempt:
                log.info(
                    "erasure checkpoint done, %.1f s after readers first kept it busy",
                    time.monotonic() - started,
                )
            return
        if attempt == 0:
            log.warning(
                "erasure: a reader on an older snapshot keeps deleted templates in the -wal file; "
                "retrying the checkpoint in the background until it ends"
            )
        if stopped.wait(CHECKPOINT_RETRY_S[min(attempt, len(CHECKPOINT_RETRY_S) - 1)]):
            return


def _vacuum_postgres(engine: Engine, _stopped: threading.Event) -> None:
    """Dead tuples become reusable free space (see the README's erasure section)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM faces")


_background: weakref.WeakKeyDictionary[Engine, _Background] = weakref.WeakKeyDictionary()
_background_lock = threading.Lock()


def _background_of(engine: Engine) -> _Background:
    job, name = (
        (_erase_sqlite, "facever-erasure-checkpoint")
        if engine.dialect.name == "sqlite"
        else (_vacuum_postgres, "facever-vacuum")
    )
    with _background_lock:
        return _background.get(engine) or _background.setdefault(engine, _Background(engine, job, name))


def erase_deleted(engine: Engine) -> None:
    """Call after a committed delete of templates, so that no database file keeps their bytes.
    SQLite: a TRUNCATE checkpoint, tried at once (done before the delete answers unless a reader on an
    older snapshot holds it up) and else retried in the background until the readers end, so that
    writers never wait for readers. PostgreSQL: ``VACUUM faces`` in the background."""
    if engine.dialect.name == "sqlite":
        try:
            if _checkpoint_truncate(engine):
                return
        except OperationalError as exc:  # e.g. the disk is full: the background run tries again
            log.warning("erasure checkpoint failed: %s", exc)
    if engine.dialect.name in ("sqlite", "postgresql"):
        _background_of(engine).request()


def erasure_pending(engine: Engine) -> bool:
    """True while a background erasure run (checkpoint or vacuum) is waiting or working."""
    with _background_lock:
        background = _background.get(engine)
    return background is not None and not background.idle.is_set()


def stop_background(engine: Engine) -> None:
    with _background_lock:
        background = _background.pop(engine, None)
    if background is not None:
        background.stopped.set()


class Database:
    def __init__(self, url: str, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S):
        self.url = url
        self.engine = create_db_engine(url, busy_timeout_s)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def write_problem(self) -> Retryable | None:
        """None when a write would be taken now; else why not (see facever.app.db.writable)."""
        return write_problem(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        stop_background(self.engine)
        self.engine.dispose()
