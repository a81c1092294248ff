"""Variables, connections, pools, the audit log and the runtime backend, on SQLite and
PostgreSQL, through the store queries and the services the CLI calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.errors import (
    AlreadyExistsError,
    ConnectionNotFound,
    InvalidInputError,
    PoolNotFound,
    VariableNotFound,
)
from slipstream.sdk.connection import Connection
from slipstream.sdk.runtime import RuntimeBackend
from slipstream.service import connections as connection_service
from slipstream.service import database as database_service
from slipstream.service import pools as pool_service
from slipstream.service import variables as variable_service
from slipstream.store import audit, crypto, schema
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import Dag, DagRun, TaskInstance
from slipstream.store.secrets import DatabaseBackend


@dataclass
class Store:
    config: Config
    engine: Engine
    factory: sessionmaker[Session]
    fernet: MultiFernet


@pytest.fixture
def store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("SLIPSTREAM__DATABASE__URL", db_url)
    config = load_config()
    engine = make_engine(config)
    schema.migrate(engine)
    yield Store(config, engine, session_factory(engine), crypto.load_fernet(config))
    engine.dispose()


def _events(store: Store) -> list[tuple[str, str | None]]:
    with transaction(store.factory) as session:
        return [(e.event, e.owner) for e in audit.list_entries(session)]


# --- variables ---------------------------------------------------------------------------


def test_variables_round_trip_encrypted_and_audited(store: Store) -> None:
    f, fn = store.factory, store.fernet
    assert variable_service.set_variable(f, fn, "k", "v1", description="d", actor="ann")
    assert not variable_service.set_variable(f, fn, "k", "plain-value-two", actor="ann")
    record = variable_service.get_variable(f, fn, "k")
    assert (record.value, record.description) == ("plain-value-two", "d")  # description kept

    with store.engine.connect() as conn:
        val, encrypted = conn.execute(text("SELECT val, is_encrypted FROM variable")).one()
    assert encrypted and "plain-value-two" not in val

    variable_service.delete_variable(f, "k", actor="bob")
    with pytest.raises(VariableNotFound, match="variable 'k' does not exist"):
        variable_service.get_variable(f, fn, "k")
    with pytest.raises(VariableNotFound):
        variable_service.delete_variable(f, "k", actor="bob")
    assert _events(store) == [
        ("variable.delete", "bob"),
        ("variable.set", "ann"),
        ("variable.set", "ann"),
    ]


def test_import_stores_non_strings_as_json_and_exports_them_back(
    store: Store, tmp_path: Path
) -> None:
    data = {"s": "text", "n": 3, "obj": {"a": [1, 2]}}
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(data))
    assert variable_service.import_variables(store.factory, store.fernet, path, actor="a") == 3
    assert (
        variable_service.get_variable(store.factory, store.fernet, "obj").value == '{"a": [1, 2]}'
    )
    assert variable_service.export_variables(store.factory, store.fernet) == data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": 1,', "is not valid JSON"),
        ('["a", "b"]', "must hold a JSON object"),
        (json.dumps({"good": 1, "x" * 300: 2}), "longer than 250"),
    ],
)
def test_a_bad_import_file_writes_nothing(
    store: Store, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        variable_service.import_variables(store.factory, store.fernet, path, actor="a")
    assert variable_service.list_variables(store.factory, store.fernet) == []
    assert _events(store) == []


# --- connections -------------------------------------------------------------------------


def test_connection_secrets_never_reach_the_database_in_clear(store: Store) -> None:
    conn = connection_service.build_connection(
        "warehouse",
        conn_type="postgres",
        host="db.example",
        login="etl",
        password="hunter2-very-secret",
        port=5432,
        extra='{"api_key": "extra-secret-value", "sslmode": "require"}',
    )
    connection_service.add_connection(store.factory, store.fernet, conn, actor="ann")

    with store.engine.connect() as conn_:
        row = conn_.execute(text("SELECT * FROM connection")).one()
    raw = " ".join(str(v) for v in row)
    assert "hunter2" not in raw and "extra-secret-value" not in raw
    store.engine.dispose()  # SQLite: checkpoint the WAL into the file before reading it
    if store.engine.dialect.name == "sqlite":
        db_bytes = Path(store.engine.url.database or "").read_bytes()
        assert b"hunter2" not in db_bytes and b"extra-secret-value" not in db_bytes

    back = connection_service.get_connection(store.factory, store.fernet, "warehouse")
    assert back.password == "hunter2-very-secret"
    assert back.extra_dejson == {"api_key": "extra-secret-value", "sslmode": "require"}

    shown = connection_service.describe_connection(back)
    assert shown["password"] == "***"
    assert shown["extra"] == {"api_key": "***", "sslmode": "require"}
    assert "hunter2" not in json.dumps(shown) and "extra-secret-value" not in json.dumps(shown)
    assert connection_service.describe_connection(back, show_secrets=True)["password"] == (
        "hunter2-very-secret"
    )


def test_connections_from_uri_duplicates_and_deletes(store: Store) -> None:
    f, fn = store.factory, store.fernet
    conn = connection_service.build_connection("h", uri="http://u:p%40w@host:8080/path?x=1")
    connection_service.add_connection(f, fn, conn, actor="a")
    with pytest.raises(AlreadyExistsError, match="connection 'h' already exists"):
        connection_service.add_connection(f, fn, conn, actor="a")
    got = connection_service.get_connection(f, fn, "h")
    assert (got.conn_type, got.password, got.port, got.extra_dejson) == (
        "http",
        "p@w",
        8080,
        {"x": "1"},
    )
    assert [c.conn_id for c in connection_service.list_connections(f, fn)] == ["h"]
    connection_service.delete_connection(f, "h", actor="a")
    with pytest.raises(ConnectionNotFound):
        connection_service.delete_connection(f, "h", actor="a")
    assert [e for e, _ in _events(store)] == ["connection.delete", "connection.add"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uri": "no-scheme-here"}, "has no scheme"),
        ({}, "needs a URI or a connection type"),
        ({"conn_type": "http", "extra": "{bad"}, "not valid JSON"),
        ({"conn_type": "http", "extra": "[1]"}, "must be a JSON object"),
        ({"uri": "http://h", "host": "x"}, "not both"),
    ],
)
def test_bad_connection_input_is_one_clear_sentence(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        connection_service.build_connection("c", **kwargs)  # type: ignore[arg-type]


def test_key_rotation_reencrypts_every_secret(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection_service.add_connection(
        store.factory, store.fernet, Connection("c", "http", password="pw"), actor="a"
    )
    variable_service.set_variable(store.factory, store.fernet, "v", "val", actor="a")
    old_key = store.config.fernet_key_file.read_text().strip()
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("SLIPSTREAM__SECRETS__FERNET_KEY", f"{new},{old_key}")
    both = crypto.load_fernet(load_config())
    assert database_service.rotate_fernet_key(store.factory, both, actor="a") == (1, 1)

    monkeypatch.setenv("SLIPSTREAM__SECRETS__FERNET_KEY", new)
    only_new = crypto.load_fernet(load_config())
    assert connection_service.get_connection(store.factory, only_new, "c").password == "pw"
    assert variable_service.get_variable(store.factory, only_new, "v").value == "val"


# --- pools -------------------------------------------------------------------------------


def _add_task_instances(store: Store, states: list[tuple[str, str, int]]) -> None:
    now = datetime.now(UTC)
    with transaction(store.factory) as session:
        session.add(Dag(dag_id="d", fileloc="/d.py"))
        session.flush()
        session.add(
            DagRun(dag_id="d", run_id="r", run_type="manual", state="running", run_after=now)
        )
        session.flush()
        for i, (state, pool, slots) in enumerate(states):
            session.add(
                TaskInstance(
                    dag_id="d",
                    run_id="r",
                    task_id=f"t{i}",
                    state=state,
                    pool=pool,
                    pool_slots=slots,
                )
            )


def test_pools_count_running_and_queued_slots(store: Store) -> None:
    f = store.factory
    pool_service.set_pool(f, "etl", 5, "ETL jobs", actor="a")
    _add_task_instances(
        store,
        [
            ("running", "etl", 2),
            ("queued", "etl", 1),
            ("success", "etl", 3),
            ("running", "default_pool", 1),
        ],
    )
    etl = pool_service.get_pool(f, "etl")
    assert (etl.slots, etl.running, etl.queued, etl.occupied, etl.open) == (5, 2, 1, 3, 2)
    listed = {p.pool: p for p in pool_service.list_pools(f)}
    assert set(listed) == {"default_pool", "etl"}
    assert listed["default_pool"].open == 127


def test_pool_rules(store: Store) -> None:
    f = store.factory
    with pytest.raises(InvalidInputError, match="negative number of slots"):
        pool_service.set_pool(f, "p", -1, actor="a")
    with pytest.raises(InvalidInputError, match="default_pool cannot be deleted"):
        pool_service.delete_pool(f, "default_pool", actor="a")
    with pytest.raises(PoolNotFound, match="pool 'nope' does not exist"):
        pool_service.get_pool(f, "nope")
    pool_service.set_pool(f, "default_pool", 4, actor="a")
    assert pool_service.get_pool(f, "default_pool").description == "Default pool"
    pool_service.set_pool(f, "p", 0, actor="a")
    pool_service.delete_pool(f, "p", actor="b")
    assert [e for e, _ in _events(store)] == ["pool.delete", "pool.set", "pool.set"]


def test_pools_import_all_or_nothing_and_export_round_trip(store: Store, tmp_path: Path) -> None:
    f = store.factory
    good = tmp_path / "pools.json"
    good.write_text(json.dumps({"etl": {"slots": 4, "description": "ETL"}, "api": {"slots": 2}}))
    assert pool_service.import_pools(f, good, actor="a") == 2
    exported = pool_service.export_pools(f)
    assert exported["etl"] == {"slots": 4, "description": "ETL"}
    assert exported["api"] == {"slots": 2, "description": None}
    assert exported["default_pool"]["slots"] == 128

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"fresh": {"slots": 1}, "broken": {"slots": "many"}}))
    with pytest.raises(InvalidInputError, match="slots of pool 'broken' must be an integer"):
        pool_service.import_pools(f, bad, actor="a")
    assert "fresh" not in pool_service.export_pools(f)
    missing = tmp_path / "missing.json"
    with pytest.raises(InvalidInputError, match=r"pools file .* does not exist"):
        pool_service.import_pools(f, missing, actor="a")


# --- runtime backend and database actions -------------------------------------------


def test_database_backend_serves_task_code(store: Store) -> None:
    # typed as the protocol, so mypy checks that the store implements the SDK's contract
    backend: RuntimeBackend = DatabaseBackend(store.factory, store.fernet)
    assert backend.get_variable("missing") is None
    backend.set_variable("k", "v", "desc")
    assert backend.get_variable("k") == "v"
    assert backend.get_connection("missing") is None
    connection_service.add_connection(
        store.factory, store.fernet, Connection("c", "http", password="pw"), actor="a"
    )
    conn = backend.get_connection("c")
    assert conn is not None and conn.password == "pw"


def test_reset_is_audited_and_migrate_again_is_not(store: Store) -> None:
    assert not database_service.migrate(store.engine, actor="a").changed
    database_service.reset(store.engine, actor="ann")
    assert _events(store) == [("db.reset", "ann")]
