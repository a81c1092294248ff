"""Queries that clear task instances so they run again, and send their runs back to the
scheduler. The caller owns the transaction."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store.models import DagRun, TaskInstance


def task_instances_of_runs(
    session: Session, dag_id: str, run_ids: Collection[str]
) -> list[TaskInstance]:
    """The task instances of the given runs of ``dag_id``, by run and task id."""
    if not run_ids:
        return []
    query = (
        select(TaskInstance)
        .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id.in_(list(run_ids)))
        .order_by(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index)
    )
    return list(session.scalars(query))


def clear_task_instance(session: Session, ti_id: int, *, retries: int, now: datetime) -> bool:
    """Send one task instance back to state none, whatever its state, with ``retries`` more
    tries than it has had. The try number stays (finished tries keep their history rows).

    A running one goes to restarting instead, as in Airflow: its worker learns from its next
    heartbeat that the try is no longer its own, stops it, and only then sets it to none —
    so the next try cannot start while the cleared one still runs."""
    running = TaskInstanceState.RUNNING.value
    result = session.execute(
        update(TaskInstance)
        .where(TaskInstance.id == ti_id)
        .values(
            state=case(
                (TaskInstance.state == running, TaskInstanceState.RESTARTING.value),
                else_=TaskInstanceState.NONE.value,
            ),
            max_tries=TaskInstance.try_number + retries,
            end_date=None,
            duration=None,
            next_retry_at=None,
            scheduled_at=None,
            error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def requeue_finished_run(session: Session, dag_id: str, run_id: str, *, now: datetime) -> bool:
    """Send a finished run back to queued, so the scheduler starts it again; False (and no
    change) for a run that is still queued or running, which carries on by itself."""
    finished = [DagRunState.SUCCESS.value, DagRunState.FAILED.value]
    result = session.execute(
        update(DagRun)
        .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id, DagRun.state.in_(finished))
        .values(
            state=DagRunState.QUEUED.value,
            queued_at=now,
            start_date=None,
            end_date=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]
