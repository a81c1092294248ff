"""Why a task has not started (``service.waiting.explain_waiting``), on SQLite and
PostgreSQL: a real DAG file parsed, runs triggered through the service, states moved with
the store's writes as the scheduler and workers would."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.dag_processor import DagProcessor
from slipstream.errors import DagRunNotFound, TaskNotFound
from slipstream.service.runs import set_paused, trigger_dag
from slipstream.service.waiting import explain_waiting
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import jobs
from slipstream.store import pools as pool_store
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.schema import migrate
from slipstream.store.task_instances import TIKey

S = TaskInstanceState
T0 = datetime(2024, 5, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=1)

FLOW = """
from datetime import datetime, timedelta
from slipstream import DAG
from slipstream.operators import BashOperator

with DAG("flow", schedule=None, start_date=datetime(2024, 1, 1), max_active_runs=1,
         max_active_tasks=1):
    a = BashOperator(task_id="a", bash_command="true", pool="tiny", retries=1)
    b = BashOperator(task_id="b", bash_command="true", depends_on_past=True, queue="gpu")
    c = BashOperator(task_id="c", bash_command="true", pool="tiny")
    a >> b
"""


@dataclass
class Env:
    config: Config
    factory: sessionmaker[Session]

    def why(self, run_id: str, task_id: str) -> list[str]:
        return explain_waiting(self.factory, "flow", run_id, task_id, now=NOW, config=self.config)

    def trigger(self, hours: int) -> str:
        when = T0 + timedelta(hours=hours)
        return trigger_dag(self.factory, "flow", now=when, logical_date=when).run_id

    def run_state(self, run_id: str, state: DagRunState) -> None:
        with transaction(self.factory) as session:
            run_store.set_dag_run_state(session, "flow", run_id, state, NOW)

    def move(self, run_id: str, task_id: str, old: S, new: S, **fields: object) -> None:
        with transaction(self.factory) as session:
            key = TIKey("flow", run_id, task_id)
            assert ti_store.set_state(session, key, expected={old}, new=new, now=NOW, **fields)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "flow.py").write_text(textwrap.dedent(FLOW))
    config = load_config(
        {
            "SLIPSTREAM_HOME": str(tmp_path / "home"),
            "SLIPSTREAM__DATABASE__URL": db_url,
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
        }
    )
    engine = make_engine(config)
    migrate(engine)
    factory = session_factory(engine)
    assert [r.error for r in DagProcessor(config, factory).process_folder()] == [None]
    yield Env(config, factory)
    engine.dispose()


def test_reasons_follow_the_run_and_the_task(env: Env) -> None:
    earlier, run_id, later = env.trigger(0), env.trigger(1), env.trigger(2)
    # new DAGs start paused: every run waits, queued
    assert env.why(run_id, "a") == [
        "DAG 'flow' is paused: the scheduler moves none of its runs on until it is unpaused"
    ]
    set_paused(env.factory, "flow", False, now=NOW)
    assert env.why(run_id, "a") == ["the run is queued: the scheduler starts it at its next pass"]

    # the earlier run failed at "b"; this one runs, so the later one waits its turn
    env.run_state(earlier, DagRunState.RUNNING)
    env.move(earlier, "b", S.NONE, S.FAILED)
    env.run_state(earlier, DagRunState.FAILED)
    env.run_state(run_id, DagRunState.RUNNING)
    assert env.why(later, "a") == [
        "the run is queued behind max_active_runs: 1 of 1 runs of DAG 'flow' are running"
    ]
    assert env.why(run_id, "b") == ["upstream tasks are not done yet: 'a' (none)"]

    # "a" is scheduled, but its pool does not exist yet, then is taken by "c"
    env.move(run_id, "a", S.NONE, S.SCHEDULED, scheduled_at=NOW)
    assert env.why(run_id, "a") == [
        "pool 'tiny' does not exist: its tasks wait until it is created "
        "(`slipstream pools set tiny SLOTS`)"
    ]
    with transaction(env.factory) as session:
        pool_store.upsert(session, "tiny", 1)
    assert env.why(run_id, "a") == [
        "it is ready and there is room: the scheduler queues it at its next pass"
    ]
    env.move(run_id, "c", S.NONE, S.RUNNING, try_number=1, start_date=NOW)
    assert env.why(run_id, "a") == [
        "pool 'tiny' is full: 1 of 1 slots are in use and the task needs 1",
        "the run has reached its max_active_tasks of 1: 1 of its tasks are queued or running",
    ]
    assert env.why(run_id, "c") == []

    # queued: who serves its queue
    env.move(run_id, "a", S.SCHEDULED, S.QUEUED, try_number=1, queued_at=NOW)
    assert env.why(run_id, "a") == [
        "it is queued for queue 'default', but no worker is running (`slipstream worker`)"
    ]
    with transaction(env.factory) as session:
        jobs.register(session, "worker", hostname="h", pid=1, now=NOW, detail="gpu")
        # a worker that stopped heartbeating long ago counts for nothing
        jobs.register(session, "worker", hostname="h", pid=2, now=T0, detail="default")
    assert env.why(run_id, "a") == [
        "it is queued for queue 'default', which no live worker serves (they serve 'gpu'): "
        "start one with `slipstream worker`"
    ]
    with transaction(env.factory) as session:
        jobs.register(session, "worker", hostname="h", pid=3, now=NOW, detail="default,gpu")
    assert env.why(run_id, "a") == [
        "it is queued for queue 'default', served by 1 live worker: it starts when one of them "
        "has a free slot (worker.concurrency)"
    ]

    # its first try failed: the retry is due later
    env.move(run_id, "a", S.QUEUED, S.UP_FOR_RETRY, next_retry_at=NOW + timedelta(minutes=4))
    assert env.why(run_id, "a") == [
        "try 1 failed: the next try is due at 2024-05-02 00:04:00 UTC (in 4 min)"
    ]

    # "a" succeeded: "b" now waits on the earlier run's "b" (depends_on_past)
    env.move(run_id, "a", S.UP_FOR_RETRY, S.SUCCESS)
    assert env.why(run_id, "b") == [
        f"depends_on_past: the task has not succeeded in the previous run {earlier!r} "
        "(it is failed)"
    ]
    set_paused(env.factory, "flow", True, now=NOW)
    assert env.why(run_id, "b")[0].startswith("DAG 'flow' is paused")
    assert env.why(run_id, "a") == []

    # a run that ended leaves its unstarted tasks where they are
    assert env.why(earlier, "a") == [
        f"run {earlier!r} has ended (failed): its unfinished tasks run again only if they "
        "are cleared"
    ]


def test_unknown_ids_say_what_is_missing(env: Env) -> None:
    run_id = env.trigger(0)
    with pytest.raises(TaskNotFound, match="has no task 'aa'; did you mean 'a'"):
        env.why(run_id, "aa")
    with pytest.raises(DagRunNotFound, match="DAG 'flow' has no run 'nope'"):
        env.why("nope", "a")
