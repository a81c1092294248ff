"""The scheduler's queries on DAGs and DAG runs. The caller owns the transaction.

Each query matches an index (``ix_dag_next_dagrun_create_after``, ``ix_dag_run_state``,
``ix_task_instance_state_*``), so a pass over a quiet installation reads almost nothing.

Several schedulers may share a PostgreSQL database. The queries a scheduler writes after
take ``lock=True``: they lock what they return ``FOR UPDATE SKIP LOCKED``, in a fixed order,
so each DAG (run creation, starting queued runs) and each running run (evaluation) is
handled by one scheduler at a time, and a row another scheduler holds is passed over, never
waited for. SQLite ignores the locks: it has one scheduler, and one writer at a time.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text, tuple_
from sqlalchemy.orm import Session

from slipstream.states import DagRunState, DagRunType
from slipstream.store.models import Dag, DagRun, TaskInstance

ACTIVE_RUN_STATES = (DagRunState.QUEUED.value, DagRunState.RUNNING.value)
#: runs that ``slipstream dags test`` drives itself; the scheduler leaves them alone
TEST_TRIGGER = "test"
#: runs a backfill asked for (new, or earlier runs it re-runs): they proceed while paused
BACKFILL_TRIGGER = "backfill"


def due_dags(session: Session, now: datetime, *, lock: bool = False) -> list[Dag]:
    """Unpaused, active DAGs whose next scheduled run may be created at ``now``, oldest due
    first; with ``lock``, only those no other transaction holds, locked."""
    query = (
        select(Dag)
        .where(
            Dag.is_paused.is_(False),
            Dag.is_active.is_(True),
            Dag.latest_version_id.is_not(None),
            Dag.next_dagrun_create_after <= now,
        )
        .order_by(Dag.next_dagrun_create_after, Dag.dag_id)
    )
    if lock:
        query = query.with_for_update(skip_locked=True, key_share=True)
    return list(session.scalars(query))


def next_creation_times(session: Session, blocked: Collection[str]) -> datetime | None:
    """The earliest time a scheduled run becomes due, ignoring DAGs in ``blocked`` (at
    their max_active_runs: they are looked at again when one of their runs ends)."""
    query = select(func.min(Dag.next_dagrun_create_after)).where(
        Dag.is_paused.is_(False),
        Dag.is_active.is_(True),
        Dag.latest_version_id.is_not(None),
    )
    if blocked:
        query = query.where(Dag.dag_id.not_in(list(blocked)))
    return session.scalar(query)


def limit_lock_waits(session: Session, seconds: float) -> None:
    """Give up (an error, which rolls the transaction back) rather than wait longer than
    ``seconds`` for a lock, until the transaction ends. A scheduler evaluating runs holds
    their rows while it writes their task instances; a user's action may hold task
    instances while it waits for a run's row. Of the two, the scheduler yields — well
    before PostgreSQL's deadlock check (1 s) would pick a victim, maybe the user — and
    tries again on its next pass. No-op on SQLite, whose one writer never waits mid-way."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL lock_timeout = '{int(seconds * 1000)}ms'"))


def active_run_counts(session: Session) -> dict[str, dict[str, int]]:
    """``{dag_id: {state: count}}`` of queued and running runs."""
    query = (
        select(DagRun.dag_id, DagRun.state, func.count())
        .where(DagRun.state.in_(ACTIVE_RUN_STATES))
        .group_by(DagRun.dag_id, DagRun.state)
    )
    counts: dict[str, dict[str, int]] = {}
    for dag_id, state, n in session.execute(query):
        counts.setdefault(dag_id, {})[state] = int(n)
    return counts


def has_queued_runs(session: Session) -> bool:
    query = select(DagRun.id).where(DagRun.state == DagRunState.QUEUED.value).limit(1)
    return session.scalar(query) is not None


def queued_runs(session: Session, *, lock: bool = False) -> list[tuple[DagRun, bool]]:
    """Queued runs, oldest first, each with whether they must wait for a paused DAG (a
    backfill's runs do not). With ``lock``, their DAGs' rows are locked (what run creation
    locks too, so ``max_active_runs`` is counted by one scheduler at a time per DAG), and
    runs of a DAG another transaction holds are left out."""
    query = (
        select(
            DagRun,
            Dag.is_paused
            & (DagRun.run_type != DagRunType.BACKFILL.value)
            & ((DagRun.triggered_by.is_(None)) | (DagRun.triggered_by != BACKFILL_TRIGGER)),
        )
        .join(Dag, Dag.dag_id == DagRun.dag_id)
        .where(DagRun.state == DagRunState.QUEUED.value)
        .order_by(DagRun.run_after, DagRun.logical_date, DagRun.id)
    )
    if lock:
        query = query.with_for_update(of=Dag, skip_locked=True, key_share=True)
    return [(run, bool(paused)) for run, paused in session.execute(query)]


@dataclass(frozen=True)
class RunRow:
    """What a pass needs of a running run (plain columns: read on every pass)."""

    dag_id: str
    run_id: str
    run_type: str
    logical_date: datetime | None
    start_date: datetime | None
    dag_version_id: int | None


_RUN_ROW_COLUMNS = (
    "dag_id",
    "run_id",
    "run_type",
    "logical_date",
    "start_date",
    "dag_version_id",
)
_RUN_T = cast(Table, DagRun.__table__)
_DAG_T = cast(Table, Dag.__table__)
_RUN_ROW = select(
    DagRun.dag_id,
    DagRun.run_id,
    DagRun.run_type,
    DagRun.logical_date,
    DagRun.start_date,
    DagRun.dag_version_id,
)


_RUNNING = (
    select(*(_RUN_T.c[name] for name in _RUN_ROW_COLUMNS))
    .join(_DAG_T, _DAG_T.c.dag_id == _RUN_T.c.dag_id)
    .where(
        _RUN_T.c.state == DagRunState.RUNNING.value,
        (_RUN_T.c.triggered_by.is_(None)) | (_RUN_T.c.triggered_by != TEST_TRIGGER),
        _DAG_T.c.is_paused.is_(False)
        | (_RUN_T.c.run_type == DagRunType.BACKFILL.value)
        | (_RUN_T.c.triggered_by == BACKFILL_TRIGGER),
    )
    .order_by(_RUN_T.c.logical_date, _RUN_T.c.id)
)
_RUNNING_OF = _RUNNING.where(
    tuple_(_RUN_T.c.dag_id, _RUN_T.c.run_id).in_(bindparam("keys", expanding=True))
)
# The run rows only (not their DAGs: run creation locks those). FOR NO KEY UPDATE, not FOR
# UPDATE: a worker inserting a row that points at the run (a try's history, XComs, log
# chunks) takes FOR KEY SHARE on it, which FOR UPDATE would conflict with — the scheduler
# would skip the run it was woken for. NO KEY UPDATE still excludes another scheduler.
_RUNNING_LOCKED = _RUNNING.with_for_update(of=_RUN_T, skip_locked=True, key_share=True)
_RUNNING_OF_LOCKED = _RUNNING_OF.with_for_update(of=_RUN_T, skip_locked=True, key_share=True)


def running_runs(
    session: Session, keys: Collection[tuple[str, str]] | None = None, *, lock: bool = False
) -> list[RunRow]:
    """Running runs the scheduler drives (all, or those of ``keys``), oldest first.

    Runs of paused DAGs are left as they are, as in Airflow, except backfills, which were
    asked for explicitly. Runs that ``dags test`` drives itself are never touched. With
    ``lock`` the runs are locked for evaluation; a run another transaction holds is left
    out (another scheduler is evaluating it, or a writer that will wake the schedulers).
    """
    if keys is not None and not keys:
        return []
    conn = session.connection()
    if keys is None:
        return [_run_row(row) for row in conn.execute(_RUNNING_LOCKED if lock else _RUNNING)]
    rows = conn.execute(_RUNNING_OF_LOCKED if lock else _RUNNING_OF, {"keys": list(keys)})
    return [_run_row(row) for row in rows]


def _run_row(row: Any) -> RunRow:
    return RunRow(**{name: row[i] for i, name in enumerate(_RUN_ROW_COLUMNS)})


def next_running_run(session: Session, dag_id: str, logical_date: datetime) -> RunRow | None:
    """The running run of ``dag_id`` right after ``logical_date`` (for depends_on_past)."""
    row = session.execute(
        _RUN_ROW.where(
            DagRun.dag_id == dag_id,
            DagRun.state == DagRunState.RUNNING.value,
            DagRun.logical_date > logical_date,
        )
        .order_by(DagRun.logical_date)
        .limit(1)
    ).first()
    return None if row is None else _run_row(row)


_TI = cast(Table, TaskInstance.__table__)
# Built once: read on every pass for every run that changed.
_TI_STATES = select(_TI.c.task_id, _TI.c.state, _TI.c.next_retry_at).where(
    _TI.c.dag_id == bindparam("dag_id"), _TI.c.run_id == bindparam("run_id")
)


def ti_states(session: Session, dag_id: str, run_id: str) -> dict[str, tuple[str, datetime | None]]:
    """``{task_id: (state, next_retry_at)}`` of a run (plain columns: this runs every pass)."""
    rows = session.connection().execute(_TI_STATES, {"dag_id": dag_id, "run_id": run_id})
    return {task_id: (state, retry) for task_id, state, retry in rows}
