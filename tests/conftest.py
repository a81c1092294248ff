"""Shared fixtures: an isolated SLIPSTREAM_HOME per test, SQLite and PostgreSQL databases.

A missing PostgreSQL skips its tests on a laptop and fails them under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get(
    "SLIPSTREAM_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test gets its own home and no SLIPSTREAM__* settings from the outside."""
    for name in list(os.environ):
        if name.startswith(("SLIPSTREAM__", "SLIPSTREAM_VAR_", "SLIPSTREAM_CONN_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SLIPSTREAM_HOME", str(tmp_path / "home"))
    # the example DAGs are loaded only where a test asks for them
    monkeypatch.setenv("SLIPSTREAM__CORE__LOAD_EXAMPLES", "false")
    from slipstream import masking

    masking.reset()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _service_missing(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    from sqlalchemy import create_engine, text

    name = f"slipstream_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        _service_missing("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    """Run a test once on SQLite and once on PostgreSQL (emptied before the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{home / 'slipstream.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield url
