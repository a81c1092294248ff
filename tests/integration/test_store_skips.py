"""A branch's skips in the store: only task instances still in ``none`` become skipped, on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import load_config
from slipstream.store import schema
from slipstream.store import task_instances as ti_queries
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import Dag, DagRun, TaskInstance

NOW = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def factory(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    monkeypatch.setenv("SLIPSTREAM__DATABASE__URL", db_url)
    engine = make_engine(load_config())
    schema.migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def test_skip_unstarted_leaves_tasks_that_moved_on(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        session.add(Dag(dag_id="d", fileloc="/d.py"))
        session.flush()
        session.add(
            DagRun(dag_id="d", run_id="r", run_type="manual", state="running", run_after=NOW)
        )
        session.flush()
        for task_id, state in [("a", "none"), ("b", "running"), ("c", "none"), ("d", "success")]:
            session.add(TaskInstance(dag_id="d", run_id="r", task_id=task_id, state=state))
    with transaction(factory) as session:
        changed = ti_queries.skip_unstarted(
            session, "d", "r", ["d", "c", "b", "a", "gone"], now=NOW
        )
    assert changed == ["a", "c"]
    with transaction(factory) as session:
        rows = {ti.task_id: ti for ti in ti_queries.list_for_run(session, "d", "r")}
        assert {t: ti.state for t, ti in rows.items()} == {
            "a": "skipped",
            "b": "running",
            "c": "skipped",
            "d": "success",
        }
        assert rows["a"].end_date is not None
        assert rows["b"].end_date is None
