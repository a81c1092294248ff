"""Queries on DAG runs. Functions take a Session and never commit: the caller owns the
transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from slipstream.errors import AlreadyExistsError
from slipstream.sdk.context import PreviousRun
from slipstream.serialization import SerializedDag
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store.models import DagRun, TaskInstance


@dataclass(frozen=True)
class TaskSpec:
    """What a new task instance row needs to know of its task."""

    task_id: str
    operator: str
    max_tries: int
    pool: str = "default_pool"
    pool_slots: int = 1
    queue: str = "default"
    priority_weight: int = 1


def manual_run_id(logical_date: datetime) -> str:
    """The run id of a manual run (a trigger, ``dags test``) when none is given."""
    return f"manual__{logical_date.isoformat()}"


def task_specs(dag: SerializedDag) -> list[TaskSpec]:
    """The task instance rows a new run of ``dag`` needs."""
    return [
        TaskSpec(
            task_id=t.task_id,
            operator=t.operator,
            max_tries=t.retries,
            pool=t.pool,
            pool_slots=t.pool_slots,
            queue=t.queue,
            priority_weight=t.priority_weight_total,
        )
        for t in dag.task_dict.values()
    ]


def create_dag_run(
    session: Session,
    *,
    dag_id: str,
    run_id: str,
    run_type: str,
    logical_date: datetime,
    data_interval: tuple[datetime, datetime],
    run_after: datetime,
    conf: dict[str, Any],
    tasks: Iterable[TaskSpec],
    now: datetime,
    state: DagRunState = DagRunState.QUEUED,
    dag_version_id: int | None = None,
    triggered_by: str | None = None,
) -> DagRun:
    """Insert a DAG run and one task instance per task, in state ``none``."""
    existing = session.scalar(
        select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    )
    if existing is not None:
        raise AlreadyExistsError(f"DAG {dag_id!r} already has a run {run_id!r}")
    run = DagRun(
        dag_id=dag_id,
        run_id=run_id,
        run_type=run_type,
        state=state.value,
        logical_date=logical_date,
        data_interval_start=data_interval[0],
        data_interval_end=data_interval[1],
        run_after=run_after,
        queued_at=now,
        start_date=now if state == DagRunState.RUNNING else None,
        conf=conf,
        dag_version_id=dag_version_id,
        triggered_by=triggered_by,
        updated_at=now,
    )
    session.add(run)
    session.add_all(
        TaskInstance(
            dag_id=dag_id,
            run_id=run_id,
            task_id=spec.task_id,
            map_index=-1,
            try_number=0,
            max_tries=spec.max_tries,
            state=TaskInstanceState.NONE.value,
            operator=spec.operator,
            pool=spec.pool,
            pool_slots=spec.pool_slots,
            queue=spec.queue,
            priority_weight=spec.priority_weight,
            dag_version_id=dag_version_id,
            updated_at=now,
        )
        for spec in tasks
    )
    session.flush()
    return run


def get_dag_run(session: Session, dag_id: str, run_id: str) -> DagRun | None:
    return session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))


def delete_dag_run(session: Session, dag_id: str, run_id: str) -> bool:
    """Delete a run with its task instances, tries and XComs (foreign keys cascade)."""
    result = session.execute(delete(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_dag_run_state(
    session: Session, dag_id: str, run_id: str, state: DagRunState, now: datetime
) -> None:
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if state == DagRunState.RUNNING:
        values["start_date"] = now
    if state.is_finished:
        values["end_date"] = now
    session.execute(
        update(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id).values(**values)
    )


def previous_run_states(
    session: Session, dag_id: str, logical_date: datetime
) -> dict[str, TaskInstanceState] | None:
    """Task states of the run just before ``logical_date`` (for depends_on_past), or None
    when there is no earlier run."""
    previous = session.scalar(
        select(DagRun)
        .where(DagRun.dag_id == dag_id, DagRun.logical_date < logical_date)
        .order_by(DagRun.logical_date.desc())
        .limit(1)
    )
    if previous is None:
        return None
    rows = session.execute(
        select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == previous.run_id
        )
    )
    return {task_id: TaskInstanceState(state) for task_id, state in rows}


def previous_successful_run(session: Session, dag_id: str, logical_date: datetime) -> DagRun | None:
    """The latest successful run of ``dag_id`` before ``logical_date``."""
    return session.scalar(
        select(DagRun)
        .where(
            DagRun.dag_id == dag_id,
            DagRun.logical_date < logical_date,
            DagRun.state == DagRunState.SUCCESS.value,
        )
        .order_by(DagRun.logical_date.desc())
        .limit(1)
    )


def as_previous_run(run: DagRun | None) -> PreviousRun | None:
    if run is None:
        return None
    return PreviousRun(run.data_interval_start, run.data_interval_end, run.start_date, run.end_date)


def find_dag_runs(
    session: Session,
    dag_id: str,
    *,
    states: Iterable[DagRunState] | None = None,
    run_id: str | None = None,
    logical_date_from: datetime | None = None,
    logical_date_to: datetime | None = None,
    limit: int | None = None,
) -> list[DagRun]:
    """Runs of ``dag_id``, newest logical date first, filtered by state, run id and an
    inclusive range of logical dates."""
    query = (
        select(DagRun)
        .where(DagRun.dag_id == dag_id)
        .order_by(DagRun.logical_date.desc(), DagRun.id.desc())
    )
    if states is not None:
        query = query.where(DagRun.state.in_([s.value for s in states]))
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    if logical_date_from is not None:
        query = query.where(DagRun.logical_date >= logical_date_from)
    if logical_date_to is not None:
        query = query.where(DagRun.logical_date <= logical_date_to)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def page_dag_runs(
    session: Session,
    dag_id: str,
    *,
    states: Iterable[str] | None = None,
    run_type: str | None = None,
    logical_date_from: datetime | None = None,
    logical_date_to: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[DagRun], int]:
    """One page of the runs of ``dag_id``, newest logical date first, and how many match
    in all: filtered by states, run type and an inclusive range of logical dates."""
    conditions: list[Any] = [DagRun.dag_id == dag_id]
    if states is not None:
        conditions.append(DagRun.state.in_(list(states)))
    if run_type is not None:
        conditions.append(DagRun.run_type == run_type)
    if logical_date_from is not None:
        conditions.append(DagRun.logical_date >= logical_date_from)
    if logical_date_to is not None:
        conditions.append(DagRun.logical_date <= logical_date_to)
    total = session.scalar(select(func.count()).select_from(DagRun).where(*conditions)) or 0
    query = (
        select(DagRun)
        .where(*conditions)
        .order_by(DagRun.logical_date.desc(), DagRun.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(query)), int(total)
