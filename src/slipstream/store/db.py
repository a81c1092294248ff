"""Engines and sessions for the metadata database.

SQLite runs in WAL mode with a busy timeout so a worker writing never blocks the readers;
foreign keys are switched on (SQLite leaves them off by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
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
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


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
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session and a transaction; commit on success, roll back on any error.

    Database errors surface as :class:`DatabaseError` so the caller's boundary can show them.
    """
    session = factory()
    try:
        with session.begin():
            yield session
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"metadata database error: {reason}") from None
    finally:
        session.close()
