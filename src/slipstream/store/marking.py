"""Queries that put task instances and runs in a state a user chose ("mark success",
"mark failed", "queue up"). The caller owns the transaction.

A mark is a compare-and-set on the row's state and try number as they were read: a try that
ends at the same moment either lands first (and the mark, seeing the new state, changes
nothing) or loses its row (its worker's next write or heartbeat is refused, and it stops
the try). Like a clear, a mark is a person overriding the state machine, so it may move a
task instance from any state.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store.models import DagRun, TaskInstance, TaskInstanceHistory

_S = TaskInstanceState
FINISHED_RUN_STATES = (DagRunState.SUCCESS.value, DagRunState.FAILED.value)


def mark_task_instance(
    session: Session, ti: TaskInstance, new: TaskInstanceState, *, now: datetime, note: str
) -> bool:
    """Set ``ti`` (as read in this transaction) to ``new`` if it still has the state and
    try number it was read with. A running try taken away this way gets its history row,
    ending in ``new`` with ``note`` as its error, since its worker will not write one.
    True when the row changed."""
    was_running = ti.state == _S.RUNNING.value
    start = ti.start_date or now
    duration = (now - start).total_seconds()
    result = session.execute(
        update(TaskInstance)
        .where(
            TaskInstance.id == ti.id,
            TaskInstance.state == ti.state,
            TaskInstance.try_number == ti.try_number,
        )
        .values(
            state=new.value,
            start_date=start,
            end_date=now,
            duration=duration,
            next_retry_at=None,
            error=note if new == _S.FAILED else None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if was_running and ti.try_number >= 1:
        session.add(
            TaskInstanceHistory(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=ti.map_index,
                try_number=ti.try_number,
                max_tries=ti.max_tries,
                state=new.value,
                operator=ti.operator,
                pool=ti.pool,
                pool_slots=ti.pool_slots,
                queue=ti.queue,
                priority_weight=ti.priority_weight,
                hostname=ti.hostname,
                pid=ti.pid,
                queued_at=ti.queued_at,
                start_date=start,
                end_date=now,
                duration=duration,
                dag_version_id=ti.dag_version_id,
                error=note,
            )
        )
    return True


def reopen_finished_run(session: Session, dag_id: str, run_id: str, *, now: datetime) -> bool:
    """A finished run whose tasks a user changed goes back to running, so the scheduler
    decides again what follows (and ends it again). False for a run not finished."""
    result = session.execute(
        update(DagRun)
        .where(
            DagRun.dag_id == dag_id,
            DagRun.run_id == run_id,
            DagRun.state.in_(FINISHED_RUN_STATES),
        )
        .values(state=DagRunState.RUNNING.value, end_date=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def set_run_state(
    session: Session, dag_id: str, run_id: str, state: DagRunState, *, now: datetime
) -> None:
    """Put a run in ``state`` as a user asked: a finished state ends it now; queued sends it
    back for the scheduler to start again, from its current task states."""
    values: dict[str, object] = {"state": state.value, "updated_at": now}
    if state.is_finished:
        values["end_date"] = now
    elif state == DagRunState.QUEUED:
        values.update(queued_at=now, start_date=None, end_date=None)
    session.execute(
        update(DagRun)
        .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
