"""Queries on task instances and their tries. The caller owns the transaction.

Every state change is a compare-and-set: the UPDATE names the state (and try number) it
expects, so a late or duplicate writer changes nothing and learns so from the return value.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from slipstream.states import TaskInstanceState
from slipstream.store.models import TaskInstance, TaskInstanceHistory
from slipstream.store.xcoms import clear_xcoms, put_xcoms

#: what a try's history row copies from its task instance
_HISTORY_COLUMNS = (
    TaskInstance.max_tries,
    TaskInstance.operator,
    TaskInstance.pool,
    TaskInstance.pool_slots,
    TaskInstance.queue,
    TaskInstance.priority_weight,
    TaskInstance.hostname,
    TaskInstance.pid,
    TaskInstance.queued_at,
    TaskInstance.start_date,
    TaskInstance.dag_version_id,
)


# Statements on the path from one task's end to the next one's start, built once with bound
# parameters and run on the Core connection: building and coercing a statement per call
# through the ORM costs more than the database work itself.
_TI = cast(Table, TaskInstance.__table__)
_BY_KEY = (
    (_TI.c.dag_id == bindparam("k_dag_id"))
    & (_TI.c.run_id == bindparam("k_run_id"))
    & (_TI.c.task_id == bindparam("k_task_id"))
    & (_TI.c.map_index == bindparam("k_map_index"))
)
_FINISH_READ = select(
    *(_TI.c[c.key] for c in (*_HISTORY_COLUMNS, TaskInstance.state, TaskInstance.try_number))
).where(_BY_KEY)
_FINISH_WRITE = (
    update(_TI)
    .where(
        _BY_KEY,
        _TI.c.state == TaskInstanceState.RUNNING.value,
        _TI.c.try_number == bindparam("k_try_number"),
    )
    .values(
        state=bindparam("v_state"),
        end_date=bindparam("v_end_date"),
        duration=bindparam("v_duration"),
        error=bindparam("v_error"),
        next_retry_at=bindparam("v_next_retry_at"),
        updated_at=bindparam("v_end_date"),
        # in the same UPDATE: storing them costs the try's end no extra statement; None is
        # SQL NULL (the try rendered nothing), not JSON null
        rendered_fields=bindparam("v_rendered_fields", type_=JSON(none_as_null=True)),
    )
)
_SET_STATE: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
_HISTORY_INSERT = insert(cast(Table, TaskInstanceHistory.__table__))


@dataclass(frozen=True)
class TIKey:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


def key_params(key: TIKey) -> dict[str, Any]:
    """The bound parameters of a statement that selects ``key`` with ``_BY_KEY``."""
    return {
        "k_dag_id": key.dag_id,
        "k_run_id": key.run_id,
        "k_task_id": key.task_id,
        "k_map_index": key.map_index,
    }


def _where(key: TIKey) -> Any:
    return (
        (TaskInstance.dag_id == key.dag_id)
        & (TaskInstance.run_id == key.run_id)
        & (TaskInstance.task_id == key.task_id)
        & (TaskInstance.map_index == key.map_index)
    )


def list_for_run(session: Session, dag_id: str, run_id: str) -> list[TaskInstance]:
    query = (
        select(TaskInstance)
        .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        .order_by(TaskInstance.task_id)
    )
    return list(session.scalars(query))


def get(session: Session, key: TIKey) -> TaskInstance | None:
    return session.scalar(select(TaskInstance).where(_where(key)))


def set_state(
    session: Session,
    key: TIKey,
    *,
    expected: Collection[TaskInstanceState],
    new: TaskInstanceState,
    now: datetime,
    **fields: Any,
) -> bool:
    """Move the task instance to ``new`` if its state is one of ``expected``."""
    # Core and a statement built once per shape: the scheduler calls this for every task
    # it moves.
    shape = (tuple(sorted(s.value for s in expected)), tuple(sorted(fields)))
    statement = _SET_STATE.get(shape)
    if statement is None:
        statement = (
            update(_TI)
            .where(_BY_KEY, _TI.c.state.in_(shape[0]))
            .values(
                state=bindparam("v_state"),
                updated_at=bindparam("v_updated_at"),
                **{name: bindparam(f"v_{name}") for name in shape[1]},
            )
        )
        _SET_STATE[shape] = statement
    params = {
        **key_params(key),
        "v_state": new.value,
        "v_updated_at": now,
        **{f"v_{name}": value for name, value in fields.items()},
    }
    return session.connection().execute(statement, params).rowcount == 1


def skip_unstarted(
    session: Session, dag_id: str, run_id: str, task_ids: Collection[str], *, now: datetime
) -> list[str]:
    """Mark skipped those of ``task_ids`` still in state none (a branch or short circuit
    chose against them); returns the ones it changed. A task that has started, or was
    decided otherwise meanwhile, keeps its state."""
    none, skipped = TaskInstanceState.NONE, TaskInstanceState.SKIPPED
    changed = []
    for task_id in sorted(task_ids):
        key = TIKey(dag_id, run_id, task_id)
        if set_state(session, key, expected={none}, new=skipped, now=now, end_date=now):
            changed.append(task_id)
    return changed


def running_values(
    *, now: datetime, hostname: str, pid: int | None, job_id: int | None = None
) -> dict[str, Any]:
    """The columns a try sets as it starts running: a clean slate, and its owner."""
    return {
        "state": TaskInstanceState.RUNNING.value,
        "start_date": now,
        "end_date": None,
        "duration": None,
        "next_retry_at": None,
        "error": None,
        "hostname": hostname,
        "pid": pid,
        "worker_job_id": job_id,
        "last_heartbeat_at": now,
        "updated_at": now,
    }


def start_try(
    session: Session,
    key: TIKey,
    *,
    expected: Collection[TaskInstanceState],
    now: datetime,
    hostname: str,
    pid: int | None = None,
) -> int | None:
    """Claim the next try: ``expected`` → running with try_number + 1. Returns the new try
    number, or None when the row was not in an expected state (someone else owns it).
    XComs of an earlier try are cleared, as a new try starts from nothing."""
    row = get(session, key)
    if row is None or row.state not in {s.value for s in expected}:
        return None
    try_number = row.try_number + 1
    claimed = session.execute(
        update(TaskInstance)
        .where(
            _where(key), TaskInstance.state == row.state, TaskInstance.try_number == row.try_number
        )
        .values(try_number=try_number, **running_values(now=now, hostname=hostname, pid=pid))
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    clear_xcoms(
        session, dag_id=key.dag_id, run_id=key.run_id, task_id=key.task_id, map_index=key.map_index
    )
    return try_number


def finish_try(
    session: Session,
    key: TIKey,
    *,
    try_number: int,
    state: TaskInstanceState,
    now: datetime,
    error: str | None = None,
    xcoms: Mapping[str, str] | None = None,
    next_retry_at: datetime | None = None,
    rendered_fields: Mapping[str, Any] | None = None,
) -> bool:
    """Record the end of a try — state, XComs, the template fields as it rendered them
    (masked, JSON-safe; None when it rendered nothing) and a history row — if this try
    still owns the row (state running, same try number). Returns False, writing nothing,
    otherwise."""
    # Plain columns, not an ORM object: this runs once per try, on the path from a task's
    # end to its downstream's start.
    conn = session.connection()
    params = key_params(key)
    row = conn.execute(_FINISH_READ, params).first()
    if row is None or row.state != TaskInstanceState.RUNNING.value or row.try_number != try_number:
        return False
    duration = (now - row.start_date).total_seconds() if row.start_date else None
    updated = conn.execute(
        _FINISH_WRITE,
        {
            **params,
            "k_try_number": try_number,
            "v_state": state.value,
            "v_end_date": now,
            "v_duration": duration,
            "v_error": error,
            "v_next_retry_at": next_retry_at,
            "v_rendered_fields": None if rendered_fields is None else dict(rendered_fields),
        },
    )
    if updated.rowcount != 1:
        return False
    conn.execute(
        _HISTORY_INSERT,
        {
            **{c.key: getattr(row, c.key) for c in _HISTORY_COLUMNS},
            "dag_id": key.dag_id,
            "run_id": key.run_id,
            "task_id": key.task_id,
            "map_index": key.map_index,
            "try_number": try_number,
            "state": state.value,
            "end_date": now,
            "duration": duration,
            "error": error,
        },
    )
    if xcoms:
        put_xcoms(
            session,
            dag_id=key.dag_id,
            run_id=key.run_id,
            task_id=key.task_id,
            map_index=key.map_index,
            values=xcoms,
            now=now,
        )
    return True


def history(session: Session, key: TIKey) -> list[TaskInstanceHistory]:
    query = (
        select(TaskInstanceHistory)
        .where(
            TaskInstanceHistory.dag_id == key.dag_id,
            TaskInstanceHistory.run_id == key.run_id,
            TaskInstanceHistory.task_id == key.task_id,
            TaskInstanceHistory.map_index == key.map_index,
        )
        .order_by(TaskInstanceHistory.try_number)
    )
    return list(session.scalars(query))
