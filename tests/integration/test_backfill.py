"""Backfills on SQLite and PostgreSQL, through the service the CLI calls: the runs it
queues, the runs it runs again or leaves, and what it refuses (writing nothing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from slipstream import DAG, Param
from slipstream.config import load_config
from slipstream.errors import DagNotFound, InvalidInputError
from slipstream.operators import EmptyOperator
from slipstream.serialization import SerializedDag, dag_hash, serialize_dag
from slipstream.service import backfill
from slipstream.service.backfill import BackfillAction, ReprocessBehavior
from slipstream.states import DagRunState
from slipstream.store import audit, jobs, schema
from slipstream.store import dags as dag_store
from slipstream.store import runs as run_store
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import AuditLog, DagRun, TaskInstance

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
JAN_1 = datetime(2024, 1, 1, tzinfo=UTC)


def day(d: int, hour: int = 2) -> datetime:
    return datetime(2024, 1, d, hour, tzinfo=UTC)


def rid(d: int) -> str:
    return f"backfill__2024-01-{d:02d}T02:00:00+00:00"


@pytest.fixture
def factory(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    monkeypatch.setenv("SLIPSTREAM__DATABASE__URL", db_url)
    engine = make_engine(load_config())
    schema.migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def store_dag(factory: sessionmaker[Session], dag: DAG, *, paused: bool = False) -> int:
    """Store ``dag`` as the DAG processor would; returns its version id."""
    data = serialize_dag(dag)
    with transaction(factory) as session:
        row, _ = dag_store.upsert(session, data, NOW)
        row.is_paused = paused
        dag_store.record_version(session, row, data, dag_hash(data), NOW)
        session.flush()
        assert row.latest_version_id is not None
        return row.latest_version_id


def nightly(dag_id: str = "nightly", **kwargs: Any) -> DAG:
    with DAG(dag_id, schedule="0 2 * * *", start_date=JAN_1, **kwargs) as dag:
        first = EmptyOperator(task_id="extract", retries=2)
        first >> EmptyOperator(task_id="load")
    return dag


def run_backfill(factory: sessionmaker[Session], dag_id: str = "nightly", **kwargs: Any) -> Any:
    options: dict[str, Any] = {"start_date": day(1, 0), "end_date": day(3), "now": NOW}
    return backfill.backfill_dag(factory, dag_id, **(options | kwargs))


def runs(factory: sessionmaker[Session]) -> dict[str, DagRun]:
    with transaction(factory, readonly=True) as session:
        return {r.run_id: r for r in session.scalars(select(DagRun))}


def tis(factory: sessionmaker[Session], run_id: str) -> dict[str, TaskInstance]:
    with transaction(factory, readonly=True) as session:
        rows = session.scalars(select(TaskInstance).where(TaskInstance.run_id == run_id))
        return {ti.task_id: ti for ti in rows}


def audit_rows(factory: sessionmaker[Session]) -> list[AuditLog]:
    with transaction(factory, readonly=True) as session:
        return audit.list_entries(session, event="dag.backfill")


def add_run(
    factory: sessionmaker[Session],
    run_id: str,
    logical_date: datetime,
    state: DagRunState,
    *,
    version_id: int,
    run_type: str = "scheduled",
    ti_state: str = "success",
    try_number: int = 1,
) -> None:
    """A run as the scheduler leaves it: started, its tasks tried."""
    with transaction(factory) as session:
        data = dag_store.get_serialized(session, "nightly")
        assert data is not None
        run_store.create_dag_run(
            session,
            dag_id="nightly",
            run_id=run_id,
            run_type=run_type,
            logical_date=logical_date,
            data_interval=(logical_date, logical_date + timedelta(days=1)),
            run_after=logical_date + timedelta(days=1),
            conf={"from": "before"},
            tasks=run_store.task_specs(SerializedDag.from_dict(data)),
            now=NOW,
            state=state,
            dag_version_id=version_id,
        )
        run = run_store.get_dag_run(session, "nightly", run_id)
        assert run is not None
        run.start_date = NOW - timedelta(hours=1)
        run.end_date = NOW if state.is_finished else None
        for ti in session.scalars(select(TaskInstance).where(TaskInstance.run_id == run_id)):
            ti.state, ti.try_number, ti.max_tries = ti_state, try_number, 0
            ti.end_date, ti.error = NOW, "boom"


# --- creating runs -------------------------------------------------------------------------


def test_backfill_queues_one_backfill_run_per_interval_in_one_transaction(
    factory: sessionmaker[Session], db_url: str
) -> None:
    version_id = store_dag(factory, nightly(params={"n": Param(1, type="integer")}), paused=True)
    result = run_backfill(factory, conf={"n": 5}, actor="ann", database_url=db_url)

    assert [(r.run_id, r.action, r.state) for r in result.runs] == [
        (rid(1), BackfillAction.CREATE, "queued"),
        (rid(2), BackfillAction.CREATE, "queued"),
        (rid(3), BackfillAction.CREATE, "queued"),
    ]
    assert result.queued_run_ids == [rid(1), rid(2), rid(3)]
    assert result.is_paused  # reported, and left so: backfill runs proceed on a paused DAG
    stored = runs(factory)
    assert set(stored) == {rid(1), rid(2), rid(3)}
    run = stored[rid(2)]
    assert (run.run_type, run.state, run.triggered_by) == ("backfill", "queued", "backfill")
    assert (run.logical_date, run.data_interval_start, run.data_interval_end) == (
        day(2),
        day(2),
        day(3),
    )
    assert run.run_after == day(3) and run.queued_at == NOW and run.start_date is None
    assert run.conf == {"n": 5} and run.dag_version_id == version_id
    created = tis(factory, rid(2))
    assert sorted(created) == ["extract", "load"]
    assert (created["extract"].state, created["extract"].max_tries) == ("none", 2)
    assert created["load"].dag_version_id == version_id
    with transaction(factory, readonly=True) as session:
        row = dag_store.get(session, "nightly")
        assert row is not None and row.is_paused

    [entry] = audit_rows(factory)
    assert (entry.owner, entry.dag_id) == ("ann", "nightly")
    assert json.loads(entry.extra or "{}") == {
        "start_date": "2024-01-01T00:00:00+00:00",
        "end_date": "2024-01-03T02:00:00+00:00",
        "reprocess_behavior": "none",
        "created": 3,
        "rerun": 0,
        "skipped": 0,
        "conf": {"n": 5},
    }


def test_naive_dates_are_in_the_dag_time_zone(factory: sessionmaker[Session]) -> None:
    paris = ZoneInfo("Europe/Paris")
    with DAG("nightly", schedule="0 2 * * *", start_date=datetime(2024, 1, 1, tzinfo=paris)) as dag:
        EmptyOperator(task_id="noop")
    store_dag(factory, dag)
    # 02:00 in Paris is 01:00 UTC: read as UTC, 02:00 on the 2nd would miss that day's run
    result = run_backfill(
        factory, start_date=datetime(2024, 1, 2, 2), end_date=datetime(2024, 1, 2, 2)
    )
    assert [r.logical_date for r in result.runs] == [day(2, hour=1)]
    assert result.start_date == result.end_date == day(2, hour=1)
    assert list(runs(factory)) == ["backfill__2024-01-02T01:00:00+00:00"]


def test_a_dry_run_plans_the_same_and_writes_nothing(factory: sessionmaker[Session]) -> None:
    version_id = store_dag(factory, nightly())
    add_run(factory, "scheduled__2", day(2), DagRunState.FAILED, version_id=version_id)
    dry = run_backfill(factory, reprocess_behavior=ReprocessBehavior.FAILED, dry_run=True)
    assert [(r.run_id, r.action, r.state) for r in dry.runs] == [
        (rid(1), BackfillAction.CREATE, None),
        ("scheduled__2", BackfillAction.RERUN, "failed"),
        (rid(3), BackfillAction.CREATE, None),
    ]
    assert set(runs(factory)) == {"scheduled__2"}
    assert runs(factory)["scheduled__2"].state == "failed"
    assert audit_rows(factory) == []


def test_backwards_lists_the_newest_first(factory: sessionmaker[Session]) -> None:
    store_dag(factory, nightly())
    result = run_backfill(factory, run_backwards=True)
    assert result.queued_run_ids == [rid(3), rid(2), rid(1)]
    assert set(runs(factory)) == {rid(1), rid(2), rid(3)}


# --- runs that exist -----------------------------------------------------------------------


def _existing(factory: sessionmaker[Session]) -> int:
    """Runs on the 1st (success), 2nd (failed), 3rd (running) and 4th (queued)."""
    version_id = store_dag(factory, nightly())
    add_run(factory, "scheduled__1", day(1), DagRunState.SUCCESS, version_id=version_id)
    add_run(
        factory,
        "scheduled__2",
        day(2),
        DagRunState.FAILED,
        version_id=version_id,
        ti_state="failed",
        try_number=3,
    )
    add_run(
        factory,
        "manual__3",
        day(3),
        DagRunState.RUNNING,
        version_id=version_id,
        run_type="manual",
        ti_state="running",
    )
    add_run(
        factory,
        "scheduled__4",
        day(4),
        DagRunState.QUEUED,
        version_id=version_id,
        ti_state="none",
        try_number=0,
    )
    return version_id


@pytest.mark.parametrize(
    ("reprocess", "rerun"),
    [
        (ReprocessBehavior.NONE, set()),
        (ReprocessBehavior.FAILED, {"scheduled__2"}),
        (ReprocessBehavior.COMPLETED, {"scheduled__1", "scheduled__2"}),
    ],
)
def test_reprocess_behaviour_decides_which_finished_runs_run_again(
    factory: sessionmaker[Session], reprocess: ReprocessBehavior, rerun: set[str]
) -> None:
    _existing(factory)
    result = run_backfill(factory, end_date=day(5), reprocess_behavior=reprocess)
    actions = {r.run_id: r.action for r in result.runs}
    assert actions[rid(5)] == BackfillAction.CREATE
    assert actions["manual__3"] == actions["scheduled__4"] == BackfillAction.SKIP_ACTIVE
    assert {r for r, a in actions.items() if a == BackfillAction.RERUN} == rerun
    stored = runs(factory)
    assert set(stored) == {"scheduled__1", "scheduled__2", "manual__3", "scheduled__4", rid(5)}
    for run_id in ("scheduled__1", "scheduled__2"):
        assert stored[run_id].state == ("queued" if run_id in rerun else stored[run_id].state)
    assert stored["manual__3"].state == "running"
    assert {t.state for t in tis(factory, "manual__3").values()} == {"running"}
    [entry] = audit_rows(factory)
    counts = json.loads(entry.extra or "{}")
    assert (counts["created"], counts["rerun"], counts["skipped"]) == (
        1,
        len(rerun),
        4 - len(rerun),
    )


def test_a_rerun_clears_its_tasks_and_queues_the_run_keeping_its_identity(
    factory: sessionmaker[Session],
) -> None:
    version_id = _existing(factory)
    untouched = runs(factory)["scheduled__1"]
    run_backfill(factory, reprocess_behavior=ReprocessBehavior.FAILED, conf={"new": True})

    run = runs(factory)["scheduled__2"]
    assert (run.state, run.run_type, run.triggered_by) == ("queued", "scheduled", "backfill")
    assert (run.start_date, run.end_date, run.queued_at) == (None, None, NOW)
    assert run.conf == {"from": "before"} and run.dag_version_id == version_id
    cleared = tis(factory, "scheduled__2")
    assert {t.state for t in cleared.values()} == {"none"}
    # three tries done: extract (retries=2) gets two more, load (retries=0) one more
    assert (cleared["extract"].try_number, cleared["extract"].max_tries) == (3, 5)
    assert (cleared["load"].try_number, cleared["load"].max_tries) == (3, 3)
    assert cleared["extract"].end_date is None and cleared["extract"].error is None
    assert runs(factory)["scheduled__1"].state == untouched.state == "success"


def test_a_live_run_at_a_date_outweighs_a_finished_one(factory: sessionmaker[Session]) -> None:
    version_id = store_dag(factory, nightly())
    add_run(
        factory, "manual__a", day(1), DagRunState.FAILED, version_id=version_id, run_type="manual"
    )
    add_run(
        factory, "manual__b", day(1), DagRunState.RUNNING, version_id=version_id, run_type="manual"
    )
    add_run(
        factory, "manual__c", day(1), DagRunState.SUCCESS, version_id=version_id, run_type="manual"
    )
    result = run_backfill(factory, end_date=day(1), reprocess_behavior=ReprocessBehavior.COMPLETED)
    assert [(r.run_id, r.action) for r in result.runs] == [
        ("manual__b", BackfillAction.SKIP_ACTIVE)
    ]
    assert result.queued_run_ids == []


def test_the_newest_finished_run_at_a_date_speaks_for_it(factory: sessionmaker[Session]) -> None:
    version_id = store_dag(factory, nightly())
    add_run(
        factory, "manual__a", day(1), DagRunState.SUCCESS, version_id=version_id, run_type="manual"
    )
    add_run(
        factory, "manual__b", day(1), DagRunState.FAILED, version_id=version_id, run_type="manual"
    )
    result = run_backfill(factory, end_date=day(1), reprocess_behavior=ReprocessBehavior.FAILED)
    assert [(r.run_id, r.action) for r in result.runs] == [("manual__b", BackfillAction.RERUN)]
    assert runs(factory)["manual__a"].state == "success"


# --- what is refused ------------------------------------------------------------------------


def _nothing_written(factory: sessionmaker[Session]) -> bool:
    with transaction(factory, readonly=True) as session:
        count = session.scalar(select(func.count()).select_from(DagRun))
    return count == 0 and audit_rows(factory) == []


def test_a_bad_conf_names_the_param_and_writes_nothing(factory: sessionmaker[Session]) -> None:
    store_dag(factory, nightly(params={"n": Param(1, type="integer")}))
    with pytest.raises(InvalidInputError, match="'n'"):
        run_backfill(factory, conf={"n": "five"})
    assert _nothing_written(factory)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"start_date": day(3), "end_date": day(1)},
            "the end date 2024-01-01T02:00:00.* is before the start date",
        ),
        (
            {"start_date": day(1, 3), "end_date": day(1, 4)},
            "DAG 'nightly' has no run between .* \\(schedule 0 2 \\* \\* \\*\\)",
        ),
        (
            {"start_date": day(1), "end_date": day(9), "now": day(1, 12)},
            "no run of DAG 'nightly' between .* has ended yet: the first, at 2024-01-01T02:00:00",
        ),
    ],
)
def test_a_range_with_no_run_is_refused_clearly(
    factory: sessionmaker[Session], kwargs: dict[str, Any], message: str
) -> None:
    store_dag(factory, nightly())
    with pytest.raises(InvalidInputError, match=message):
        run_backfill(factory, **kwargs)
    assert _nothing_written(factory)


def test_a_dag_without_schedule_cannot_be_backfilled(factory: sessionmaker[Session]) -> None:
    with DAG("by_hand", schedule=None, start_date=JAN_1) as dag:
        EmptyOperator(task_id="noop")
    store_dag(factory, dag)
    with pytest.raises(
        InvalidInputError, match="DAG 'by_hand' has no schedule: a backfill needs one"
    ):
        run_backfill(factory, "by_hand")
    assert _nothing_written(factory)


def test_an_unknown_dag_names_the_close_ones(factory: sessionmaker[Session]) -> None:
    store_dag(factory, nightly())
    with pytest.raises(DagNotFound, match="did you mean 'nightly'"):
        run_backfill(factory, "nightli")


def test_depends_on_past_refuses_to_run_backwards(factory: sessionmaker[Session]) -> None:
    with DAG("nightly", schedule="0 2 * * *", start_date=JAN_1) as dag:
        EmptyOperator(task_id="step", depends_on_past=True)
    store_dag(factory, dag)
    with pytest.raises(InvalidInputError, match="its tasks step depend on past runs"):
        run_backfill(factory, run_backwards=True)
    assert _nothing_written(factory)
    assert len(run_backfill(factory).queued_run_ids) == 3  # forwards is fine


# --- following the runs ----------------------------------------------------------------------


def test_watch_polls_until_every_run_has_finished(factory: sessionmaker[Session]) -> None:
    store_dag(factory, nightly())
    result = run_backfill(factory)
    naps: list[float] = []

    def finish_one(seconds: float) -> None:
        """Each pause, one run ends (as the scheduler would): 1st succeeds, 2nd fails,
        the 3rd is deleted."""
        naps.append(seconds)
        with transaction(factory) as session:
            if len(naps) == 1:
                run_store.set_dag_run_state(session, "nightly", rid(1), DagRunState.SUCCESS, NOW)
            elif len(naps) == 2:
                run_store.set_dag_run_state(session, "nightly", rid(2), DagRunState.FAILED, NOW)
            else:
                run_store.delete_dag_run(session, "nightly", rid(3))

    seen = list(backfill.watch(factory, "nightly", result.queued_run_ids, sleep=finish_one))
    assert naps == [0.5, 0.5, 0.5]
    assert seen[0] == {rid(1): "queued", rid(2): "queued", rid(3): "queued"}
    assert seen[-1] == {rid(1): "success", rid(2): "failed", rid(3): backfill.GONE}
    assert len(seen) == 4


def test_a_scheduler_counts_as_running_while_its_heartbeat_is_fresh(
    factory: sessionmaker[Session],
) -> None:
    assert not backfill.scheduler_running(factory, now=NOW, timeout=30)
    with transaction(factory) as session:
        jobs.register(session, "scheduler", hostname="h", pid=1, now=NOW)
    assert backfill.scheduler_running(factory, now=NOW + timedelta(seconds=10), timeout=30)
    assert not backfill.scheduler_running(factory, now=NOW + timedelta(seconds=31), timeout=30)


def test_a_rerun_whose_version_is_gone_takes_the_latest(factory: sessionmaker[Session]) -> None:
    version_id = store_dag(factory, nightly())
    add_run(factory, "scheduled__1", day(1), DagRunState.FAILED, version_id=version_id)
    with transaction(factory) as session:
        run = run_store.get_dag_run(session, "nightly", "scheduled__1")
        assert run is not None
        run.dag_version_id = None  # its version row was deleted
    run_backfill(factory, end_date=day(1), reprocess_behavior=ReprocessBehavior.FAILED)
    run = runs(factory)["scheduled__1"]
    assert (run.state, run.dag_version_id) == ("queued", version_id)
    assert tis(factory, "scheduled__1")["extract"].max_tries == 1 + 2
