"""Marking task instances and DAG runs success or failed by hand, as Airflow's "Mark
success" / "Mark failed" / "Queue up" actions. Shared by the REST API and the UI.

A running try that is marked is taken away from its worker: the mark is a compare-and-set
on (state, try number), the worker's next heartbeat finds the row changed and stops the
process, and the state the user chose stays. The scheduler is woken so that what follows
the marked tasks goes on. As in Airflow, the failed and upstream-failed tasks downstream of
a marked task are cleared, so a pipeline stopped by a failure resumes from the mark; and a
finished run with a task marked goes back to running, so the scheduler decides its
downstream tasks and its end again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import InvalidInputError, TaskNotFound
from slipstream.executors.base import TaskEvent
from slipstream.executors.local import notify_scheduler
from slipstream.serialization import SerializedDag
from slipstream.service.clearing import FAILED_STATES, ancestors
from slipstream.service.inspection import require_run
from slipstream.states import FINISHED_TI_STATES, DagRunState, TaskInstanceState
from slipstream.store import audit
from slipstream.store import clearing as clear_store
from slipstream.store import dags as dag_store
from slipstream.store import marking as mark_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import transaction
from slipstream.store.models import DagRun, TaskInstance

_S = TaskInstanceState

#: what a task instance may be marked
TASK_MARK_STATES = (_S.SUCCESS.value, _S.FAILED.value, _S.SKIPPED.value)
#: what a run may be marked
RUN_MARK_STATES = (DagRunState.SUCCESS.value, DagRunState.FAILED.value, DagRunState.QUEUED.value)
#: a try of these is claimed by (or about to be claimed by) a worker
_IN_FLIGHT = frozenset({_S.QUEUED.value, _S.RUNNING.value, _S.RESTARTING.value})
_FINISHED = frozenset(s.value for s in FINISHED_TI_STATES)


def _note(state: str, actor: str | None) -> str:
    return f"marked {state} by {actor or 'a user'}"


def _run_dag(session: Session, run: DagRun) -> SerializedDag | None:
    """The DAG version the run was created with (the latest if that one is gone)."""
    version = (
        dag_store.get_version(session, run.dag_version_id)
        if run.dag_version_id is not None
        else None
    ) or dag_store.latest_version(session, run.dag_id)
    return None if version is None else SerializedDag.from_dict(version.data)


def _chosen_tasks(
    dag: SerializedDag | None,
    rows: Sequence[TaskInstance],
    task_ids: Sequence[str],
    *,
    upstream: bool,
    downstream: bool,
    where: str,
) -> set[str]:
    """The tasks to mark: those asked for (each must be in the run) and, if asked, their
    upstream or downstream tasks in the run's DAG version."""
    known = {ti.task_id for ti in rows}
    missing = sorted(set(task_ids) - known)
    if missing:
        shown = ", ".join(repr(t) for t in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise TaskNotFound(f"{where} has no task {shown}")
    chosen = set(task_ids)
    if dag is not None:
        in_dag = [t for t in task_ids if t in dag.task_dict]
        if downstream:
            chosen |= dag.descendants(in_dag)
        if upstream:
            chosen |= ancestors(dag, in_dag)
    return chosen & known


def mark_task_instances(
    factory: sessionmaker[Session],
    dag_id: str,
    run_id: str,
    task_ids: Sequence[str],
    state: str,
    *,
    now: datetime,
    actor: str | None,
    database_url: str | None = None,
    include_upstream: bool = False,
    include_downstream: bool = False,
) -> list[str]:
    """Mark the task instances of ``task_ids`` (with their upstream and/or downstream
    tasks if asked) in one run ``state`` (success, failed or skipped); returns the task
    ids marked (those whose state changed), in the DAG's order. Failed and upstream-failed
    tasks downstream of them are cleared to run again. One ``task.mark`` audit row."""
    if state not in TASK_MARK_STATES:
        raise InvalidInputError(
            f"a task instance can be marked {', '.join(TASK_MARK_STATES)}, not {state!r}"
        )
    if not task_ids:
        raise InvalidInputError("name at least one task to mark")
    new = _S(state)
    where = f"run {run_id!r} of DAG {dag_id!r}"
    with transaction(factory) as session:
        run = require_run(session, dag_id, run_id)
        dag = _run_dag(session, run)
        rows = ti_store.list_for_run(session, dag_id, run_id)
        chosen = _chosen_tasks(
            dag,
            rows,
            task_ids,
            upstream=include_upstream,
            downstream=include_downstream,
            where=where,
        )
        note = _note(state, actor)
        changed: dict[str, str] = {}
        for ti in rows:
            if ti.task_id in chosen and ti.state != new.value:
                old = ti.state
                if mark_store.mark_task_instance(session, ti, new, now=now, note=note):
                    changed[ti.task_id] = old
        cleared = _clear_failed_downstream(session, dag, rows, chosen, now=now)
        reopened = bool(changed or cleared) and mark_store.reopen_finished_run(
            session, dag_id, run_id, now=now
        )
        audit.record(
            session,
            "task.mark",
            owner=actor,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_ids[0] if len(task_ids) == 1 else None,
            extra={
                "state": state,
                "tasks": changed,
                "asked": sorted(set(task_ids)),
                "include_upstream": include_upstream,
                "include_downstream": include_downstream,
                "cleared_downstream": cleared,
                "run_reopened": reopened,
            },
            when=now,
        )
    if database_url and (changed or cleared):
        notify_scheduler(database_url, TaskEvent(dag_id, run_id))
    order = {t: i for i, t in enumerate(dag.topological_order())} if dag else {}
    return sorted(changed, key=lambda t: (order.get(t, len(order)), t))


def _clear_failed_downstream(
    session: Session,
    dag: SerializedDag | None,
    rows: Sequence[TaskInstance],
    marked: set[str],
    *,
    now: datetime,
) -> dict[str, str]:
    """Clear the failed and upstream-failed task instances downstream of ``marked`` (not
    marked themselves), as Airflow does after a mark: what a failure stopped may run now.
    Returns task id -> the state it had."""
    if dag is None:
        return {}
    below = dag.descendants(t for t in marked if t in dag.task_dict) - marked
    cleared = {}
    for ti in rows:
        if ti.task_id in below and ti.state in FAILED_STATES:
            retries = dag.task_dict[ti.task_id].retries
            if clear_store.clear_task_instance(session, ti.id, retries=retries, now=now):
                cleared[ti.task_id] = ti.state
    return cleared


def mark_run(
    factory: sessionmaker[Session],
    dag_id: str,
    run_id: str,
    state: str,
    *,
    now: datetime,
    actor: str | None,
    database_url: str | None = None,
) -> DagRun:
    """Mark a whole run, as Airflow does:

    - success: every unfinished task instance becomes success, and the run success;
    - failed: what is queued or running fails, what has not started is skipped, and the
      run fails (finished task instances keep their state);
    - queued: the run goes back to queued for the scheduler to start again; its task
      instances keep their states.

    One ``dag_run.mark`` audit row. Returns the run as it is now."""
    if state not in RUN_MARK_STATES:
        raise InvalidInputError(f"a run can be marked {', '.join(RUN_MARK_STATES)}, not {state!r}")
    target = DagRunState(state)
    with transaction(factory) as session:
        run = require_run(session, dag_id, run_id)
        old_state = run.state
        changed: dict[str, str] = {}
        if target != DagRunState.QUEUED:
            note = _note(state, actor)
            for ti in ti_store.list_for_run(session, dag_id, run_id):
                if ti.state in _FINISHED:
                    continue
                if target == DagRunState.SUCCESS:
                    new = _S.SUCCESS
                else:
                    new = _S.FAILED if ti.state in _IN_FLIGHT else _S.SKIPPED
                old = ti.state
                if mark_store.mark_task_instance(session, ti, new, now=now, note=note):
                    changed[ti.task_id] = old
        mark_store.set_run_state(session, dag_id, run_id, target, now=now)
        audit.record(
            session,
            "dag_run.mark",
            owner=actor,
            dag_id=dag_id,
            run_id=run_id,
            extra={"state": state, "old_state": old_state, "tasks": changed},
            when=now,
        )
    if database_url:
        # queued: a run to start; finished: room for the DAG's next runs
        notify_scheduler(database_url)
    with transaction(factory, readonly=True) as session:
        return require_run(session, dag_id, run_id)
