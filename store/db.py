"""Engines for the two backends, with the durability settings each needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store.pii import Keyring, attach


def make_engine(
    url: str,
    *,
    pii: Keyring | None = None,
    connect_timeout: float = 5.0,
    busy_timeout: float = 10.0,
    pool_size: int = 5,
) -> Engine:
    """Create an engine; SQLite is set up for durability and one writer at a time.

    ``pii`` are the keys citizens' details are encrypted under; without them the engine
    reads and writes everything else, and any PII value is a clear error (store/pii.py).
    Errors never quote their statement's parameters: a letter's text and its citizen would
    reach a log line or a job's recorded error.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"timeout": busy_timeout, "check_same_thread": False},
            hide_parameters=True,
        )
        _tune_sqlite(engine, busy_timeout)
    else:
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            pool_timeout=connect_timeout * 6,
            connect_args={"connect_timeout": max(1, round(connect_timeout))},
            hide_parameters=True,
        )
    if pii is not None:
        attach(engine, pii)
    return engine


def _tune_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE can be issued below.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL can roll back committed transactions on power loss; FULL cannot.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes gets SQLITE_BUSY at once when
        # another writer committed in between, without waiting; IMMEDIATE waits its turn.
        # Sessions that only read (make_read_sessionmaker) stay deferred: in WAL mode they
        # neither wait for nor block the writer.
        read_only = conn.get_execution_options().get("read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading only (pages, API lists): they never hold SQLite's write lock."""
    return sessionmaker(engine.execution_options(read_only=True), expire_on_commit=False)


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine a sessionmaker made here is bound to (for its read-only twin, notices)."""
    engine = sessions.kw["bind"]
    assert isinstance(engine, Engine)
    return engine


def reads_like(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Read-only sessions on the same engine as ``sessions``."""
    return make_read_sessionmaker(engine_of(sessions))


def is_outage(exc: BaseException) -> bool:
    """True when the error says the database cannot be reached, not that the data is wrong."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError)
