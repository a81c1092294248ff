"""The lifecycle of the metadata database's schema: migrate, check, reset, ensure ready.

Alembic is driven from here, programmatically: users never see an ``alembic.ini``. Every
function takes an engine and turns connection failures into one-sentence
:class:`~slipstream.errors.DatabaseError` messages.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from slipstream.errors import DatabaseError
from slipstream.store.models import Base

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
NOT_INITIALISED = "the metadata database is not initialised: run `slipstream db migrate`"
# Any constant works; it only has to be the same in every slipstream process.
_PG_MIGRATION_LOCK = 0x5_11_95_73


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The revision the code expects: the newest migration shipped with this slipstream."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise DatabaseError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction; driver failures become one sentence."""
    try:
        with engine.begin() as conn:
            yield conn
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"metadata database {_where(engine)} failed: {reason}") from None


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise SQLite migrations between processes with a lock file beside the database
    (SQLite is always local). Taken before the transaction and released after its commit, so
    the next process sees the finished schema."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        fd = os.open(f"{database}.migrate-lock", os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise DatabaseError(f"cannot lock {database} for migration: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lock_in_transaction(conn: Connection) -> None:
    """PostgreSQL: a transaction-scoped advisory lock, so two `db migrate` at once both
    succeed: the second waits for the first to commit, then finds the schema at head."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})


def migrate(engine: Engine) -> MigrationResult:
    """Upgrade the schema to head. Running it on an up-to-date database changes nothing."""
    with _migration_lock(engine), _connect(engine) as conn:
        _lock_in_transaction(conn)
        before = _current(conn)
        command.upgrade(_alembic_config(conn), "head")
        after = _current(conn)
    if after is None:  # pragma: no cover - upgrade always stamps a revision
        raise DatabaseError("migration finished without recording a revision")
    return MigrationResult(before, after)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the schema to ``revision`` (``base`` removes every table)."""
    with _migration_lock(engine), _connect(engine) as conn:
        _lock_in_transaction(conn)
        command.downgrade(_alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    with _connect(engine) as conn:
        return _current(conn)


def ensure_ready(engine: Engine) -> None:
    """Cheap check before data commands: the schema exists and is at head.

    Unlike :func:`check`, it does not compare the whole schema with the models; it reads one
    row, so every command can afford it.
    """
    with _connect(engine) as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            raise DatabaseError(NOT_INITIALISED)
        current = _current(conn)
    _require_head(current)


def _require_head(current: str | None) -> None:
    if current is None:
        raise DatabaseError(NOT_INITIALISED)
    head = head_revision()
    if current != head:
        raise DatabaseError(
            f"the metadata database is at revision {current} but this slipstream needs {head}: "
            "run `slipstream db migrate`"
        )


def schema_differences(engine: Engine) -> list[Any]:
    """What differs between the database and the models (Alembic's autogenerate diff)."""
    with _connect(engine) as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diffs: list[Any] = compare_metadata(context, Base.metadata)
    return diffs


def check(engine: Engine) -> str:
    """Return the current revision; raise :class:`DatabaseError` unless the schema is at head
    and matches the models exactly."""
    current = current_revision(engine)
    _require_head(current)
    diffs = schema_differences(engine)
    if diffs:
        shown = "; ".join(_describe_diff(d) for d in diffs[:3])
        more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
        raise DatabaseError(
            f"the metadata database is at revision {current} but its schema differs from the "
            f"models: {shown}{more}"
        )
    assert current is not None  # _require_head said so
    return current


def _describe_diff(diff: Any) -> str:
    # A diff is a tuple ("add_table", Table) or a list of ("modify_type", schema, table, col...).
    if isinstance(diff, list):
        diff = diff[0]
    kind = diff[0]
    subject = diff[1]
    name = getattr(subject, "name", None) or (diff[2] if len(diff) > 2 else subject)
    if kind.startswith("modify_") and len(diff) > 3:
        name = f"{diff[2]}.{diff[3]}"
    return f"{kind} {name}"


def reset(engine: Engine) -> MigrationResult:
    """Drop every table (the ones this version knows and any others), then migrate."""
    with _migration_lock(engine), _connect(engine) as conn:
        _lock_in_transaction(conn)
        existing = MetaData()
        existing.reflect(conn)
        # reflect + drop_all orders the drops by foreign keys, including alembic_version
        existing.drop_all(conn)
    return migrate(engine)
