"""Clearing task instances (``slipstream tasks clear``) on SQLite and PostgreSQL, through the
service the CLI calls; and the pure choice of what to clear."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.dag_processor import DagProcessor
from slipstream.errors import DagNotFound, DagRunNotFound, InvalidInputError, TaskNotFound
from slipstream.executors.base import TaskEvent
from slipstream.executors.wakeup import SCHEDULER, WakeListener, wake_folder
from slipstream.serialization import SerializedDag
from slipstream.service import clearing
from slipstream.service import dags as dag_service
from slipstream.service import runs as run_service
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import audit, queue
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import DagRun, TaskInstance, TaskInstanceHistory
from slipstream.store.schema import migrate
from slipstream.store.task_instances import TIKey

S = TaskInstanceState
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)

# a >> b >> c, with d on its own; the DAG lives in Paris, an hour ahead of UTC in winter
DAG_FILE = """
from datetime import datetime
from zoneinfo import ZoneInfo
from slipstream import DAG
from slipstream.operators import EmptyOperator

with DAG("pipe", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))):
    a = EmptyOperator(task_id="a", retries=1)
    b = EmptyOperator(task_id="b", retries=2)
    c = EmptyOperator(task_id="c")
    EmptyOperator(task_id="d", retries=3)
    a >> b >> c
"""


@dataclass
class Env:
    config: Config
    engine: Engine
    factory: sessionmaker[Session]
    url: str

    def trigger(self, day: int) -> str:
        when = datetime(2024, 1, day, tzinfo=UTC)
        return run_service.trigger_dag(self.factory, "pipe", now=NOW, logical_date=when).run_id

    def finish(self, run_id: str, task_id: str, *states: TaskInstanceState) -> None:
        """Give the task instance one finished try per state, as a worker would."""
        key = TIKey("pipe", run_id, task_id)
        for state in states:
            with transaction(self.factory) as session:
                expected = {S.NONE, S.SCHEDULED, S.UP_FOR_RETRY}
                number = ti_store.start_try(session, key, expected=expected, now=NOW, hostname="h")
                assert number is not None
                ti_store.finish_try(
                    session, key, try_number=number, state=state, now=NOW, error="boom"
                )

    def set_state(
        self, run_id: str, task_id: str, state: TaskInstanceState, **fields: object
    ) -> None:
        with transaction(self.factory) as session:
            session.execute(
                update(TaskInstance)
                .where(TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)
                .values(state=state.value, **fields)
            )

    def end_run(self, run_id: str, state: DagRunState) -> None:
        with transaction(self.factory) as session:
            run_store.set_dag_run_state(session, "pipe", run_id, DagRunState.RUNNING, NOW)
            if state != DagRunState.RUNNING:
                run_store.set_dag_run_state(session, "pipe", run_id, state, NOW)

    def tis(self, run_id: str) -> dict[str, TaskInstance]:
        with transaction(self.factory) as session:
            return {ti.task_id: ti for ti in ti_store.list_for_run(session, "pipe", run_id)}

    def states(self, run_id: str) -> dict[str, str]:
        return {t: ti.state for t, ti in self.tis(run_id).items()}

    def run(self, run_id: str) -> DagRun:
        return run_service.get_run(self.factory, "pipe", run_id)

    def clear_events(self) -> list[tuple[str | None, dict[str, object]]]:
        with transaction(self.factory) as session:
            rows = audit.list_entries(session, event="task.clear")
        return sorted((r.run_id, json.loads(r.extra or "{}")) for r in rows)


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "pipe.py").write_text(textwrap.dedent(DAG_FILE))
    monkeypatch.setenv("SLIPSTREAM__DATABASE__URL", db_url)
    monkeypatch.setenv("SLIPSTREAM__CORE__DAGS_FOLDER", str(dags))
    config = load_config()
    engine = make_engine(config)
    migrate(engine)
    factory = session_factory(engine)
    DagProcessor(config, factory).process_folder()
    yield Env(config, engine, factory, db_url)
    engine.dispose()


@pytest.fixture
def three_runs(env: Env) -> tuple[str, str, str]:
    """A failed run, a running one (b running, d queued) and a successful one."""
    failed, running, done = env.trigger(1), env.trigger(2), env.trigger(3)
    env.finish(failed, "a", S.SUCCESS)
    env.finish(failed, "b", S.UP_FOR_RETRY, S.UP_FOR_RETRY, S.FAILED)
    env.set_state(failed, "c", S.UPSTREAM_FAILED, end_date=NOW)
    env.finish(failed, "d", S.SUCCESS)
    env.end_run(failed, DagRunState.FAILED)

    env.finish(running, "a", S.SUCCESS)
    with transaction(env.factory) as session:
        ti_store.start_try(
            session, TIKey("pipe", running, "b"), expected={S.NONE}, now=NOW, hostname="h"
        )
    env.set_state(running, "d", S.QUEUED, try_number=1)
    env.end_run(running, DagRunState.RUNNING)

    for task_id in "abcd":
        env.finish(done, task_id, S.SUCCESS)
    env.end_run(done, DagRunState.SUCCESS)
    return failed, running, done


# --- the choice of tasks (pure) ----------------------------------------------------------


def test_select_task_ids(env: Env) -> None:
    dag = dag_service.get_dag(env.factory, "pipe")
    assert clearing.select_task_ids(dag) == {"a", "b", "c", "d"}
    assert clearing.select_task_ids(dag, "^b$") == {"b"}
    assert clearing.select_task_ids(dag, "b", downstream=True) == {"b", "c"}
    assert clearing.select_task_ids(dag, "b", upstream=True) == {"a", "b"}
    assert clearing.select_task_ids(dag, "^b", upstream=True, downstream=True) == {"a", "b", "c"}
    assert clearing.select_task_ids(dag, "a|d", downstream=True) == {"a", "b", "c", "d"}
    assert clearing.select_task_ids(dag, "c", upstream=True) == {"a", "b", "c"}
    with pytest.raises(TaskNotFound, match="no task of DAG 'pipe' matches 'x'"):
        clearing.select_task_ids(dag, "x")
    with pytest.raises(InvalidInputError, match="not a valid regex"):
        clearing.select_task_ids(dag, "[")


@dataclass
class Row:
    task_id: str
    state: str


def test_select_instances() -> None:
    rows = [Row("a", "success"), Row("b", "failed"), Row("c", "upstream_failed"), Row("d", "none")]
    rows += [Row("e", "running"), Row("f", "queued"), Row("g", "up_for_retry")]
    every = {r.task_id for r in rows}
    chosen = clearing.select_instances(rows, every)
    assert [r.task_id for r in chosen] == ["a", "b", "c", "e", "f", "g"]  # "none" is left
    failed = clearing.select_instances(rows, every, only_failed=True)
    assert [r.task_id for r in failed] == ["b", "c"]
    assert clearing.select_instances(rows, {"a", "b"}, only_failed=True) == [rows[1]]


def test_ancestors_of_a_serialized_dag(env: Env) -> None:
    dag: SerializedDag = dag_service.get_dag(env.factory, "pipe")
    assert clearing.ancestors(dag, ["c"]) == {"a", "b"}
    assert clearing.ancestors(dag, ["a", "d"]) == set()


# --- clearing ----------------------------------------------------------------------------


def test_clear_with_downstream_over_every_run(env: Env, three_runs: tuple[str, str, str]) -> None:
    failed, running, done = three_runs
    before = {run_id: env.tis(run_id) for run_id in three_runs}
    assert (before[failed]["b"].try_number, before[failed]["b"].max_tries) == (3, 2)

    preview = clearing.clear_tasks(
        env.factory, "pipe", task_regex="^b$", downstream=True, dry_run=True, now=NOW
    )
    assert preview.dry_run
    assert [(t.run_id, t.task_id, t.old_state) for t in preview.tasks] == [
        (failed, "b", "failed"),
        (failed, "c", "upstream_failed"),
        (running, "b", "running"),  # its c has not started: nothing to clear
        (done, "b", "success"),
        (done, "c", "success"),
    ]
    assert {r: env.states(r) for r in three_runs} == {
        r: {t: ti.state for t, ti in before[r].items()} for r in three_runs
    }
    assert env.clear_events() == []

    listener = WakeListener(wake_folder(env.url), SCHEDULER)
    try:
        later = NOW + timedelta(hours=1)
        result = clearing.clear_tasks(
            env.factory,
            "pipe",
            task_regex="^b$",
            downstream=True,
            now=later,
            actor="ann",
            database_url=env.url,
        )
        woken = listener.drain()
        # the scheduler was woken: to start the requeued runs, and to look at the running one
        assert woken[0] == b""
        assert [TaskEvent.from_json(m).run_id for m in woken[1:]] == [running]
    finally:
        listener.close()
    assert result.tasks == preview.tasks and not result.dry_run
    assert result.run_ids == [failed, running, done]
    assert result.requeued_runs == [failed, done]

    assert env.states(failed) == {"a": "success", "b": "none", "c": "none", "d": "success"}
    # b was running: its worker stops the try, then sets it back to none
    assert env.states(running) == {"a": "success", "b": "restarting", "c": "none", "d": "queued"}
    assert env.states(done) == {"a": "success", "b": "none", "c": "none", "d": "success"}
    b = env.tis(failed)["b"]
    assert (b.try_number, b.max_tries) == (3, 3 + 2)  # every retry again
    assert (b.end_date, b.duration, b.error, b.next_retry_at) == (None, None, None, None)
    assert env.tis(failed)["c"].max_tries == 0  # no retries, never tried
    assert env.tis(running)["b"].max_tries == 1 + 2
    assert env.tis(failed)["a"].max_tries == before[failed]["a"].max_tries

    with transaction(env.factory) as session:
        kept = session.scalars(
            select(TaskInstanceHistory.state)
            .where(TaskInstanceHistory.run_id == failed, TaskInstanceHistory.task_id == "b")
            .order_by(TaskInstanceHistory.try_number)
        )
        assert list(kept) == ["up_for_retry", "up_for_retry", "failed"]

    for run_id in (failed, done):  # finished runs go back to the scheduler
        run = env.run(run_id)
        assert (run.state, run.start_date, run.end_date, run.queued_at) == (
            "queued",
            None,
            None,
            later,
        )
    assert env.run(running).state == "running"  # carries on by itself

    assert env.clear_events() == sorted(
        [
            (failed, {"tasks": {"b": "failed", "c": "upstream_failed"}, "run_requeued": True}),
            (running, {"tasks": {"b": "running"}, "run_requeued": False}),
            (done, {"tasks": {"b": "success", "c": "success"}, "run_requeued": True}),
        ]
    )


def test_clear_only_failed(env: Env, three_runs: tuple[str, str, str]) -> None:
    failed, running, done = three_runs
    result = clearing.clear_tasks(env.factory, "pipe", only_failed=True, now=NOW)
    assert [(t.run_id, t.task_id) for t in result.tasks] == [(failed, "b"), (failed, "c")]
    assert env.states(failed) == {"a": "success", "b": "none", "c": "none", "d": "success"}
    assert env.states(running) == {"a": "success", "b": "running", "c": "none", "d": "queued"}
    assert set(env.states(done).values()) == {"success"}
    assert env.run(failed).state == "queued" and env.run(done).state == "success"

    again = clearing.clear_tasks(env.factory, "pipe", only_failed=True, now=NOW)
    assert again.tasks == [] and again.requeued_runs == []
    assert len(env.clear_events()) == 1  # nothing cleared, nothing recorded


def test_a_cleared_queued_try_is_not_claimed(env: Env, three_runs: tuple[str, str, str]) -> None:
    _, running, _ = three_runs
    result = clearing.clear_tasks(env.factory, "pipe", task_regex="^d$", run_id=running, now=NOW)
    assert [(t.task_id, t.old_state, t.try_number) for t in result.tasks] == [("d", "queued", 1)]
    d = env.tis(running)["d"]
    assert (d.state, d.try_number, d.max_tries) == ("none", 1, 1 + 3)
    with transaction(env.factory) as session:
        claimed = queue.claim(
            session, queues=["default"], limit=10, job_id=1, hostname="h", pid=1, now=NOW
        )
    assert claimed == []


def test_clear_by_run_id_and_logical_dates(env: Env, three_runs: tuple[str, str, str]) -> None:
    failed, running, done = three_runs
    only_done = clearing.clear_tasks(env.factory, "pipe", task_regex="a", run_id=done, now=NOW)
    assert [(t.run_id, t.task_id) for t in only_done.tasks] == [(done, "a")]

    # Runs are at midnight UTC on Jan 1, 2 and 3; naive dates are Paris time (UTC+1), so
    # "2024-01-02T01:00" is the run of Jan 2 exactly, and "2024-01-03T00:59" is before Jan 3.
    ranged = clearing.clear_tasks(
        env.factory,
        "pipe",
        task_regex="^a$",
        start_date=datetime(2024, 1, 2, 1, 0),
        end_date=datetime(2024, 1, 3, 0, 59),
        dry_run=True,
        now=NOW,
    )
    assert [t.run_id for t in ranged.tasks] == [running]
    aware = clearing.clear_tasks(
        env.factory,
        "pipe",
        task_regex="^a$",
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        end_date=datetime(2024, 1, 2, tzinfo=UTC),
        dry_run=True,
        now=NOW,
    )
    assert [t.run_id for t in aware.tasks] == [failed, running]


def test_clear_errors_write_nothing(env: Env, three_runs: tuple[str, str, str]) -> None:
    failed, _, _ = three_runs
    before = env.states(failed)
    with pytest.raises(DagNotFound, match="did you mean 'pipe'"):
        clearing.clear_tasks(env.factory, "pipes", now=NOW)
    with pytest.raises(DagRunNotFound, match="has no run 'nope'"):
        clearing.clear_tasks(env.factory, "pipe", run_id="nope", now=NOW)
    with pytest.raises(TaskNotFound):
        clearing.clear_tasks(env.factory, "pipe", task_regex="zzz", now=NOW)
    with pytest.raises(InvalidInputError, match="is after"):
        clearing.clear_tasks(
            env.factory,
            "pipe",
            start_date=datetime(2024, 2, 1),
            end_date=datetime(2024, 1, 1),
            now=NOW,
        )
    assert env.states(failed) == before and env.clear_events() == []
