"""A SQLite database locked past the connect timeout is a DatabaseError, which every loop
(worker, scheduler) logs and survives, not the driver's own exception."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from slipstream.config import load_config
from slipstream.errors import DatabaseError
from slipstream.store.db import make_engine, session_factory, transaction


def test_a_write_lock_held_too_long_is_a_database_error(home: Path) -> None:
    config = load_config(
        {"SLIPSTREAM_HOME": str(home), "SLIPSTREAM__DATABASE__CONNECT_TIMEOUT": "0.2"}
    )
    engine = make_engine(config)
    factory = session_factory(engine)
    with transaction(factory) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(home / "slipstream.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with (
            pytest.raises(DatabaseError, match=r"still locked after 0\.2 s"),
            transaction(factory) as session,
        ):
            session.execute(text("INSERT INTO t VALUES (1)"))
        with transaction(factory, readonly=True) as session:  # readers are not held up
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
