"""The migrations build exactly the models' schema, on SQLite and PostgreSQL, and the schema
lifecycle (migrate, check, downgrade, reset) behaves as the CLI promises."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, select, text

from slipstream.errors import DatabaseError
from slipstream.store import schema
from slipstream.store.models import Base, Pool


@pytest.fixture(autouse=True)
def _home(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)  # where the SQLite file lives


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    result = schema.migrate(engine)

    assert result.before is None
    assert result.after == schema.head_revision()
    # compare_metadata with types, nullability, indexes, unique constraints and foreign keys
    assert schema.schema_differences(engine) == []
    assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
    assert schema.check(engine) == schema.head_revision()


def test_initial_migration_creates_the_default_pool(engine: Engine) -> None:
    schema.migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(Pool.pool, Pool.slots, Pool.description)).all()
    assert [tuple(r) for r in rows] == [("default_pool", 128, "Default pool")]


def test_migrate_twice_is_a_no_op(engine: Engine) -> None:
    schema.migrate(engine)
    again = schema.migrate(engine)
    assert not again.changed
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM slot_pool")).scalar_one() == 1


def test_downgrade_to_base_removes_every_table(engine: Engine) -> None:
    schema.migrate(engine)
    schema.downgrade(engine, "base")
    assert _tables(engine) - {"alembic_version"} == set()
    assert schema.current_revision(engine) is None
    # and the way back up still works
    assert schema.migrate(engine).after == schema.head_revision()


def test_check_fails_on_an_empty_database_and_passes_after_migrate(engine: Engine) -> None:
    with pytest.raises(DatabaseError, match="not initialised: run `slipstream db migrate`"):
        schema.check(engine)
    with pytest.raises(DatabaseError, match="not initialised"):
        schema.ensure_ready(engine)
    schema.migrate(engine)
    assert schema.check(engine) == schema.head_revision()
    schema.ensure_ready(engine)


def test_check_names_what_differs_from_the_models(engine: Engine) -> None:
    schema.migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_dag_run_state"))
    with pytest.raises(DatabaseError, match="ix_dag_run_state"):
        schema.check(engine)


def test_check_reports_an_old_revision(engine: Engine) -> None:
    schema.migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(DatabaseError, match="at revision 0000 but this slipstream needs"):
        schema.ensure_ready(engine)


def test_reset_drops_data_and_foreign_tables(engine: Engine) -> None:
    schema.migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE leftover (id INTEGER)"))
        conn.execute(text("UPDATE slot_pool SET slots = 1"))
    result = schema.reset(engine)
    assert result.after == schema.head_revision()
    assert "leftover" not in _tables(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT slots FROM slot_pool")).scalar_one() == 128


def test_two_concurrent_migrations_both_succeed(db_url: str) -> None:
    engines = [create_engine(db_url), create_engine(db_url)]
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            schema.migrate(engine)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert schema.check(engines[0]) == schema.head_revision()
    finally:
        for e in engines:
            e.dispose()


def test_an_unreachable_database_is_one_sentence() -> None:
    engine = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/x", connect_args={"connect_timeout": 2}
    )
    try:
        with pytest.raises(DatabaseError) as info:
            schema.migrate(engine)
    finally:
        engine.dispose()
    message = str(info.value)
    assert "127.0.0.1" in message
    assert "\n" not in message
