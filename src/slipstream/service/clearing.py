"""Clearing task instances so they run again (``slipstream tasks clear``), as Airflow does.

A cleared task instance goes back to state none with all its retries again; its earlier
tries stay in the history. Each finished run that had a task cleared goes back to queued,
so the scheduler starts it again; a run still queued or running carries on by itself. A
running try that is cleared is stopped by its worker, which sees at its next heartbeat that
the try is no longer its own.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import ensure_utc
from slipstream.errors import DagNotFound, InvalidInputError, TaskNotFound
from slipstream.executors.base import TaskEvent
from slipstream.executors.local import notify_scheduler
from slipstream.serialization import SerializedDag
from slipstream.service.dags import _not_found
from slipstream.service.inspection import require_run
from slipstream.states import TaskInstanceState
from slipstream.store import audit
from slipstream.store import clearing as clear_store
from slipstream.store import dags as dag_store
from slipstream.store import runs as run_store
from slipstream.store.db import transaction
from slipstream.timetables.base import parse_timezone

#: what ``only_failed`` keeps
FAILED_STATES = frozenset({TaskInstanceState.FAILED.value, TaskInstanceState.UPSTREAM_FAILED.value})


class _Instance(Protocol):
    @property
    def task_id(self) -> str: ...

    @property
    def state(self) -> str: ...


T = TypeVar("T", bound=_Instance)


@dataclass(frozen=True)
class ClearedTask:
    run_id: str
    task_id: str
    #: the state the task instance had before it was cleared
    old_state: str
    try_number: int


@dataclass(frozen=True)
class ClearResult:
    dag_id: str
    tasks: list[ClearedTask]
    #: runs sent back to queued (finished runs with a cleared task)
    requeued_runs: list[str] = field(default_factory=list)
    #: True when nothing was written (a preview of what would be cleared)
    dry_run: bool = False

    @property
    def run_ids(self) -> list[str]:
        """The runs with at least one cleared task, in the order of :attr:`tasks`."""
        return list(dict.fromkeys(t.run_id for t in self.tasks))


# --- choosing what to clear (pure) ------------------------------------------------------


def ancestors(dag: SerializedDag, task_ids: Iterable[str]) -> set[str]:
    """Every task upstream of ``task_ids`` (for "clear with upstream")."""
    seen: set[str] = set()
    stack = [u for t in task_ids for u in dag.task_dict[t].upstream_task_ids]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(dag.task_dict[node].upstream_task_ids)
    return seen


def select_task_ids(
    dag: SerializedDag,
    task_regex: str | None = None,
    *,
    task_ids: Collection[str] | None = None,
    upstream: bool = False,
    downstream: bool = False,
) -> set[str]:
    """The tasks of ``dag`` to clear: those named in ``task_ids`` (each must exist), or those
    whose id ``task_regex`` matches (``re.search``), or every task when neither is given;
    with their upstream and/or downstream tasks if asked."""
    if task_ids is not None:
        missing = sorted(set(task_ids) - dag.task_dict.keys())
        if missing:
            shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise TaskNotFound(f"DAG {dag.dag_id!r} has no task {shown}")
        matched = set(task_ids)
    elif task_regex is None:
        return set(dag.task_dict)
    else:
        try:
            pattern = re.compile(task_regex)
        except re.error as exc:
            raise InvalidInputError(
                f"--task-regex {task_regex!r} is not a valid regex: {exc}"
            ) from None
        matched = {t for t in dag.task_dict if pattern.search(t)}
        if not matched:
            raise TaskNotFound(f"no task of DAG {dag.dag_id!r} matches {task_regex!r}")
    chosen = set(matched)
    if downstream:
        chosen |= dag.descendants(matched)
    if upstream:
        chosen |= ancestors(dag, matched)
    return chosen


def select_instances(
    instances: Iterable[T], task_ids: Collection[str], *, only_failed: bool = False
) -> list[T]:
    """The instances to clear among ``instances``: those of ``task_ids`` that have left
    state none (only failed and upstream_failed ones with ``only_failed``)."""
    return [
        ti
        for ti in instances
        if ti.task_id in task_ids
        and ti.state != TaskInstanceState.NONE.value
        and (not only_failed or ti.state in FAILED_STATES)
    ]


# --- the service ------------------------------------------------------------------------


def _in_zone(value: datetime | None, timezone: str) -> datetime | None:
    """``value`` in UTC; a naive value is a wall-clock time in ``timezone``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=parse_timezone(timezone))
    return ensure_utc(value)


def clear_tasks(
    session_factory: sessionmaker[Session],
    dag_id: str,
    *,
    now: datetime,
    task_regex: str | None = None,
    task_ids: Collection[str] | None = None,
    upstream: bool = False,
    downstream: bool = False,
    only_failed: bool = False,
    run_id: str | None = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    database_url: str | None = None,
) -> ClearResult:
    """Clear the task instances of ``dag_id`` chosen by the filters, in one transaction with
    one ``task.clear`` audit row per run, then wake the scheduler.

    Tasks are those named in ``task_ids``, or matched by ``task_regex`` (see
    :func:`select_task_ids`). Runs are those with ``run_id``, or with a logical date from
    ``start_date`` to ``end_date`` (inclusive; naive values are in the DAG's time zone), or
    all of them.
    ``dry_run`` only says what would be cleared, writing nothing.
    """
    with transaction(session_factory, readonly=dry_run) as session:
        dag = _serialized_dag(session, dag_id)
        start = _in_zone(start_date, dag.timezone)
        end = _in_zone(end_date, dag.timezone)
        if start is not None and end is not None and start > end:
            raise InvalidInputError(
                f"--start-date {start.isoformat()} is after --end-date {end.isoformat()}"
            )
        chosen_ids = select_task_ids(
            dag, task_regex, task_ids=task_ids, upstream=upstream, downstream=downstream
        )
        if run_id is not None:
            require_run(session, dag_id, run_id)
        runs = run_store.find_dag_runs(
            session, dag_id, run_id=run_id, logical_date_from=start, logical_date_to=end
        )
        rows = clear_store.task_instances_of_runs(session, dag_id, [r.run_id for r in runs])
        chosen = select_instances(rows, chosen_ids, only_failed=only_failed)
        order = {r.run_id: i for i, r in enumerate(reversed(runs))}  # oldest run first
        chosen.sort(key=lambda ti: (order[ti.run_id], ti.task_id))
        tasks = [ClearedTask(ti.run_id, ti.task_id, ti.state, ti.try_number) for ti in chosen]
        if dry_run or not chosen:
            return ClearResult(dag_id, tasks, dry_run=dry_run)
        for ti in chosen:
            clear_store.clear_task_instance(
                session, ti.id, retries=dag.task_dict[ti.task_id].retries, now=now
            )
        requeued = []
        result = ClearResult(dag_id, tasks)
        for cleared_run in result.run_ids:
            if clear_store.requeue_finished_run(session, dag_id, cleared_run, now=now):
                requeued.append(cleared_run)
            audit.record(
                session,
                "task.clear",
                owner=actor,
                dag_id=dag_id,
                run_id=cleared_run,
                extra={
                    "tasks": {t.task_id: t.old_state for t in tasks if t.run_id == cleared_run},
                    "run_requeued": cleared_run in requeued,
                },
                when=now,
            )
    if database_url:
        notify_scheduler(database_url)  # requeued runs: something new to start
        for run_id in result.run_ids:
            if run_id not in requeued:  # a run still going: look at it now, not at the sweep
                notify_scheduler(database_url, TaskEvent(dag_id, run_id))
    return ClearResult(dag_id, tasks, requeued)


def _serialized_dag(session: Session, dag_id: str) -> SerializedDag:
    row = dag_store.get(session, dag_id)
    data = dag_store.get_serialized(session, dag_id)
    if row is None or data is None:
        raise _not_found(session, dag_id)
    if not row.is_active:
        raise DagNotFound(f"DAG {dag_id!r} is no longer defined by any DAG file")
    return SerializedDag.from_dict(data)


def summarize(tasks: Sequence[ClearedTask]) -> str:
    """How much was (or would be) cleared, for people: "3 task instance(s) in 2 run(s)"."""
    runs = len({t.run_id for t in tasks})
    return f"{len(tasks)} task instance(s) in {runs} run(s)"
