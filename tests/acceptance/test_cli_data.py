"""The real `slipstream` CLI in subprocesses: db, variables, connections, pools and config.

Each test runs against the isolated SLIPSTREAM_HOME of the autouse fixture (SQLite), except
where a test asks for PostgreSQL. Every failure must be one sentence, never a traceback.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from slipstream.store.schema import head_revision

T = TypeVar("T")
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/x"


def run(
    *args: str, ok: bool = True, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one CLI command; check its exit code and that it printed no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "slipstream", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    if ok:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0, result.stdout
        assert result.stderr.startswith("Error: ") or "Aborted" in result.stderr
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "-o", "json").stdout)


def run_all(*calls: Callable[[], T]) -> list[T]:
    """Run independent CLI calls at once: interpreter start-up dominates each call."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


@pytest.fixture
def migrated() -> None:
    assert "Created the metadata database" in run("db", "migrate").stdout


def test_db_lifecycle() -> None:
    listed, checked = run_all(
        lambda: run("variables", "list", ok=False), lambda: run("db", "check", ok=False)
    )
    assert "not initialised: run `slipstream db migrate`" in listed.stderr
    assert "not initialised" in checked.stderr

    head = head_revision()
    assert f"revision {head}" in run("db", "migrate").stdout
    again, checked = run_all(lambda: run("db", "migrate"), lambda: run("db", "check"))
    assert "nothing to do" in again.stdout
    assert "matches the models" in checked.stdout

    run("pools", "set", "p", "2")
    assert "Aborted" in run("db", "reset", ok=False, stdin="n\n").stderr
    assert f"now at revision {head}" in run("db", "reset", "--yes").stdout
    assert [p["pool"] for p in run_json("pools", "list")] == ["default_pool"]


def test_variables(migrated: None, tmp_path: Path) -> None:
    created, _, _ = run_all(
        lambda: run("variables", "set", "plain", "hello", "--description", "d"),
        lambda: run("variables", "set", "db_password", "s3cr3t-value"),
        lambda: run("variables", "set", "cfg", '{"a": [1, 2]}', "--json"),
    )
    assert "Created variable plain" in created.stdout

    out = tmp_path / "out.json"
    listed, table, secret, cfg, fallback, missing, bad_json, exported = run_all(
        lambda: run_json("variables", "list"),
        lambda: run("variables", "list"),
        lambda: run("variables", "get", "db_password"),
        lambda: run("variables", "get", "cfg", "-j"),
        lambda: run("variables", "get", "nope", "--default", "fallback"),
        lambda: run("variables", "get", "nope", ok=False),
        lambda: run("variables", "set", "x", "{bad", "-j", ok=False),
        lambda: run("variables", "export", str(out)),
    )
    by_key = {v["key"]: v for v in listed}
    assert by_key["plain"] == {"key": "plain", "value": "hello", "description": "d"}
    assert by_key["db_password"]["value"] == "***"
    assert "s3cr3t-value" not in table.stdout
    assert secret.stdout == "s3cr3t-value\n"  # asked for explicitly: not masked
    assert json.loads(cfg.stdout) == {"a": [1, 2]}
    assert fallback.stdout == "fallback\n"
    assert "variable 'nope' does not exist" in missing.stderr
    assert "not valid JSON" in bad_json.stderr
    assert "Exported 3 variable(s)" in exported.stdout
    assert json.loads(out.read_text())["cfg"] == {"a": [1, 2]}

    good, bad, absent = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "absent.json"
    good.write_text(json.dumps({"n": 5, "s": "x"}))
    bad.write_text('{"fresh": 1, ')
    deleted, imported, failed, not_there = run_all(
        lambda: run("variables", "delete", "plain"),
        lambda: run("variables", "import", str(good)),
        lambda: run("variables", "import", str(bad), ok=False),
        lambda: run("variables", "import", str(absent), ok=False),
    )
    assert "Deleted variable plain" in deleted.stdout
    assert "Imported 2 variable(s)" in imported.stdout
    assert "is not valid JSON" in failed.stderr
    assert "does not exist" in not_there.stderr

    again, listed, n = run_all(
        lambda: run("variables", "delete", "plain", ok=False),
        lambda: run_json("variables", "list"),
        lambda: run("variables", "get", "n"),
    )
    assert "does not exist" in again.stderr
    assert {v["key"] for v in listed} == {"db_password", "cfg", "n", "s"}  # nothing of bad.json
    assert n.stdout == "5\n"


def test_connections(migrated: None, home: Path) -> None:
    uri = "postgres://etl:pa%3Ass@db.example:5432/dw?sslmode=require&api_key=k-secret"
    added, _ = run_all(
        lambda: run("connections", "add", "pg", "--conn-uri", uri),
        lambda: run(
            "connections", "add", "api", "--conn-type", "http", "--conn-host", "api.example",
            "--conn-login", "me", "--conn-password", "hunter2-pw", "--conn-port", "443",
            "--conn-extra", '{"token": "t-secret", "timeout": 5}', "--conn-description", "the API",
        ),
    )  # fmt: skip
    assert "Added connection pg" in added.stdout
    assert stat.S_IMODE((home / "fernet.key").stat().st_mode) == 0o600

    shown, secret, listed, table, unmasked, dup, no_scheme = run_all(
        lambda: run_json("connections", "get", "pg"),
        lambda: run_json("connections", "get", "pg", "--show-secrets"),
        lambda: run_json("connections", "list"),
        lambda: run("connections", "list"),
        lambda: run("connections", "list", "--show-secrets", "-o", "json"),
        lambda: run("connections", "add", "pg", "--conn-uri", "http://h", ok=False),
        lambda: run("connections", "add", "x", "--conn-uri", "nohost", ok=False),
    )
    assert shown["password"] == "***"
    assert shown["extra"] == {"sslmode": "require", "api_key": "***"}
    assert shown["uri"] == "postgres://etl:***@db.example:5432/dw?sslmode=require&api_key=***"
    assert secret["password"] == "pa:ss" and secret["extra"]["api_key"] == "k-secret"
    assert [c["conn_id"] for c in listed] == ["api", "pg"]
    assert listed[0]["extra"] == {"token": "***", "timeout": 5}
    for secret_text in ("hunter2-pw", "t-secret", "k-secret", "pa:ss"):
        assert secret_text not in table.stdout
    assert "hunter2-pw" in unmasked.stdout
    assert "connection 'pg' already exists" in dup.stderr
    assert "has no scheme" in no_scheme.stderr

    assert "Deleted connection pg" in run("connections", "delete", "pg").stdout
    assert "does not exist" in run("connections", "get", "pg", ok=False).stderr


def test_pools(migrated: None) -> None:
    assert "Pool etl has 4 slot(s)" in run("pools", "set", "etl", "4", "ETL work").stdout
    listed, got, table, negative, default = run_all(
        lambda: run_json("pools", "list"),
        lambda: run_json("pools", "get", "etl"),
        lambda: run("pools", "get", "etl"),
        lambda: run("pools", "set", "etl", "--", "-1", ok=False),
        lambda: run("pools", "delete", "default_pool", ok=False),
    )
    by_name = {p["pool"]: p for p in listed}
    assert by_name["etl"] == {
        "pool": "etl", "slots": 4, "occupied": 0, "running": 0, "queued": 0, "open": 4,
        "description": "ETL work",
    }  # fmt: skip
    assert by_name["default_pool"]["slots"] == 128
    assert got["open"] == 4
    assert "ETL work" in table.stdout
    assert "negative" in negative.stderr
    assert "cannot be deleted" in default.stderr
    assert "Deleted pool etl" in run("pools", "delete", "etl").stdout
    assert "pool 'etl' does not exist" in run("pools", "get", "etl", ok=False).stderr


def test_config_shows_sources_and_masks_secrets() -> None:
    env = {
        "SLIPSTREAM__SECRETS__FERNET_KEY": "bXlzZWNyZXRrZXlteXNlY3JldGtleW15c2VjcmV0a2U=",
        "SLIPSTREAM__DATABASE__URL": "postgresql+psycopg://u:dbpass@h/db",
    }
    listed, section, flag, key, unknown_key = run_all(
        lambda: run("config", "list", "-o", "json", env=env),
        lambda: run_json("config", "list", "--section", "core"),
        lambda: run("config", "get-value", "core", "load_examples"),
        lambda: run("config", "get-value", "secrets", "fernet_key", env=env),
        lambda: run("config", "get-value", "core", "nope", ok=False),
    )
    rows = {r["key"]: r for r in json.loads(listed.stdout)}
    assert rows["secrets.fernet_key"]["value"] == "***"
    assert rows["secrets.fernet_key"]["source"] == "env"
    assert rows["secrets.fernet_key"]["env"] == "SLIPSTREAM__SECRETS__FERNET_KEY"
    assert rows["core.default_pool_slots"] == {
        "key": "core.default_pool_slots", "value": 128, "source": "default",
        "env": "SLIPSTREAM__CORE__DEFAULT_POOL_SLOTS", "doc": "Slots of the built-in 'default_pool'.",
    }  # fmt: skip
    assert "bXlzZWNy" not in listed.stdout and "dbpass" not in listed.stdout
    assert {r["key"].split(".")[0] for r in section} == {"core"}
    assert flag.stdout == "false\n"
    assert key.stdout == "***\n"
    assert "unknown configuration key" in unknown_key.stderr


def test_an_unreachable_database_is_one_sentence() -> None:
    env = {"SLIPSTREAM__DATABASE__URL": UNREACHABLE}
    commands = [
        ("db", "migrate"),
        ("db", "reset", "--yes"),
        ("variables", "set", "k", "v"),
        ("connections", "list"),
    ]
    results = run_all(*[lambda c=c: run(*c, ok=False, env=env) for c in commands])
    for result in results:
        assert "cannot reach the metadata database" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_on_postgresql(postgres_url: str) -> None:
    env = {"SLIPSTREAM__DATABASE__URL": postgres_url}
    run("db", "reset", "--yes", env=env)  # the shared test database may hold anything
    run("variables", "set", "k", "v", env=env)
    got, checked = run_all(
        lambda: run("variables", "get", "k", env=env), lambda: run("db", "check", env=env)
    )
    assert got.stdout == "v\n"
    assert "matches the models" in checked.stdout
