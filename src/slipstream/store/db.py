"""Engines and sessions for the metadata database.

SQLite runs in WAL mode with a busy timeout so a worker writing never blocks the readers;
foreign keys are switched on (SQLite leaves them off by default). Its transactions begin
with ``BEGIN IMMEDIATE`` (they take the write lock up front): a transaction that read under
a snapshot and then tries to write after another process committed would otherwise fail at
once with "database is locked" instead of waiting its turn, which the scheduler and the
workers, all writing, would hit constantly. :func:`read_transaction` opts out for reads.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import SQLAlchemyError as _SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config
from slipstream.errors import DatabaseError


def make_engine(config: Config) -> Engine:
    """Create the engine for ``config``'s database URL. Creates the home folder for SQLite."""
    url = config.database_url
    kwargs: dict[str, Any] = {"echo": config.database.echo, "future": True}
    if url.startswith("sqlite"):
        config.home.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": config.database.connect_timeout}
    elif url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": max(1, int(config.database.connect_timeout))}
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (_SQLAlchemyError, ImportError, ValueError) as exc:
        raise DatabaseError(f"cannot use database URL {_redact(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(
            engine,
            "begin",
            functools.partial(_sqlite_begin, timeout=config.database.connect_timeout),
        )
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Take transactions out of the driver's hands, so that _sqlite_begin decides how they
    # begin (the driver would otherwise begin them lazily, deferred).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_SQLITE_BEGIN = "sqlite_begin"


def _sqlite_begin(conn: Connection, *, timeout: float) -> None:
    statement = conn.get_execution_options().get(_SQLITE_BEGIN, "BEGIN IMMEDIATE")
    if statement != "BEGIN IMMEDIATE":
        conn.exec_driver_sql(statement)
        return
    # SQLite's own busy handler sleeps 1, 2, 5, 10... ms between attempts: a writer that
    # finds the lock taken by a transaction about to end loses whole milliseconds. Waiting
    # here in steps of a fraction of a millisecond keeps the scheduler and the workers,
    # which take turns writing all the time, from adding those to every task. The busy
    # timeout is off only for this statement (the connect timeout bounds the wait).
    raw = conn.connection.dbapi_connection
    assert raw is not None
    deadline = time.monotonic() + timeout
    delay = 0.0001
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                # Raised from an event hook, this would reach the caller as the driver's
                # own exception: say it in the tree's terms, as transaction() does.
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise DatabaseError(f"metadata database error: {exc}") from None
                if time.monotonic() >= deadline:
                    raise DatabaseError(
                        f"metadata database error: {exc} (still locked after {timeout:g} s)"
                    ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find either
        return "<unparsable URL>"


def check_reachable(engine: Engine) -> None:
    """Raise :class:`DatabaseError` with one clear sentence when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot reach the metadata database at {_redact(str(engine.url))}: {reason}"
        ) from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows read in a transaction stay usable after it commits,
    # which the CLI and runner rely on to print what they just wrote.
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, readonly: bool = False) -> Iterator[Session]:
    """Open a session and a transaction; commit on success, roll back on any error.

    Database errors surface as :class:`DatabaseError` so the caller's boundary can show them.
    ``readonly`` promises no writes, which lets SQLite read without taking the write lock.
    """
    session = factory()
    try:
        with session.begin():
            if readonly:
                session.connection(execution_options={_SQLITE_BEGIN: "BEGIN"})
            yield session
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"metadata database error: {reason}") from None
    finally:
        session.close()


@contextmanager
def read_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that only reads (see :func:`transaction`)."""
    with transaction(factory, readonly=True) as session:
        yield session
