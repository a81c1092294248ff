"""What the web UI shows of DAGs and runs: recent runs, the grid, the graph, the Gantt chart,
a DAG's source and a task's settings. Shared by the pages and the REST API.

Everything here only reads, in read transactions, from the rows and the serialized DAGs:
nothing imports a DAG file. Each function is a few indexed queries, so a page stays fast
with thousands of DAGs and runs (``benchmarks/web.py`` measures it).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import InvalidInputError, NotFoundError, TaskNotFound
from slipstream.masking import redact_value
from slipstream.serialization import SerializedDag
from slipstream.service.dags import _not_found
from slipstream.service.inspection import require_run
from slipstream.store import dags as dag_store
from slipstream.store import overview as store
from slipstream.store.db import transaction
from slipstream.store.models import DagRun, DagVersion

_ACTIVE_TRY_STATES = frozenset({"queued", "running", "restarting"})


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    state: str
    run_type: str
    logical_date: datetime | None
    run_after: datetime
    start_date: datetime | None
    end_date: datetime | None
    #: seconds from start to end; None until the run has ended
    duration: float | None = None


@dataclass(frozen=True)
class GroupInfo:
    """A TaskGroup, as a grid or graph draws it."""

    group_id: str
    label: str
    parent_group_id: str | None
    tooltip: str
    ui_color: str
    ui_fgcolor: str


@dataclass(frozen=True)
class GridTask:
    """One row of the grid: a task, under the TaskGroups holding it."""

    task_id: str
    #: the task id without its group's prefix
    label: str
    operator: str
    #: the ids of the groups holding the task, outermost first; () at the top level
    group: tuple[str, ...]
    depth: int


@dataclass(frozen=True)
class Cell:
    state: str
    try_number: int
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None


@dataclass(frozen=True)
class Grid:
    dag_id: str
    #: the newest runs asked for, oldest first
    runs: list[RunSummary]
    #: the latest version's tasks in dependency order (a group's tasks together), then tasks
    #: only older runs had, by id
    tasks: list[GridTask]
    #: (run_id, task_id) -> the task instance; absent when the run has no such task
    cells: dict[tuple[str, str], Cell]
    groups: dict[str, GroupInfo]


@dataclass(frozen=True)
class Node:
    task_id: str
    label: str
    operator: str
    #: the innermost TaskGroup holding the task; None at the top level
    group: str | None
    #: the task instance's state in the run asked for; None without a run (or no instance)
    state: str | None
    ui_color: str = "#fff"
    ui_fgcolor: str = "#000"


@dataclass(frozen=True)
class Graph:
    dag_id: str
    #: in dependency order
    nodes: list[Node]
    #: (upstream, downstream), sorted
    edges: list[tuple[str, str]]
    groups: list[GroupInfo]


@dataclass(frozen=True)
class GanttBar:
    task_id: str
    try_number: int
    state: str
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None


@dataclass(frozen=True)
class DagSource:
    fileloc: str
    source: str
    updated_at: datetime


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def _summary(row: Row[Any]) -> RunSummary:
    return RunSummary(
        run_id=row.run_id,
        state=row.state,
        run_type=row.run_type,
        logical_date=row.logical_date,
        run_after=row.run_after,
        start_date=row.start_date,
        end_date=row.end_date,
        duration=_duration(row.start_date, row.end_date),
    )


def recent_runs(
    factory: sessionmaker[Session], dag_ids: Sequence[str], per_dag: int = 10
) -> dict[str, list[RunSummary]]:
    """The newest ``per_dag`` runs of each DAG, newest first; every id given is a key (an
    unknown id, or one without runs, maps to an empty list)."""
    if per_dag < 1:
        raise InvalidInputError(f"the number of runs per DAG must be at least 1, not {per_dag}")
    found: dict[str, list[RunSummary]] = {dag_id: [] for dag_id in dag_ids}
    if not found:
        return found
    with transaction(factory, readonly=True) as session:
        rows = store.recent_runs(session, list(found), per_dag)
    for row in rows:
        found[row.dag_id].append(_summary(row))
    return found


def grid(
    factory: sessionmaker[Session], dag_id: str, *, runs: int = 25, before: datetime | None = None
) -> Grid:
    """The newest ``runs`` runs of ``dag_id`` (those due before ``before``, to page back) by
    the tasks of its latest version."""
    if runs < 1:
        raise InvalidInputError(f"the number of runs must be at least 1, not {runs}")
    with transaction(factory, readonly=True) as session:
        dag = _latest(session, dag_id)
        run_rows = store.newest_runs(session, dag_id, runs, before)
        cell_rows = store.task_instance_cells(session, dag_id, [r.run_id for r in run_rows])
    cells = {
        (r.run_id, r.task_id): Cell(
            state=r.state,
            try_number=r.try_number,
            start_date=r.start_date,
            end_date=r.end_date,
            duration=r.duration if r.duration is not None else _duration(r.start_date, r.end_date),
        )
        for r in cell_rows
    }
    tasks = grid_rows(dag) if dag is not None else []
    known = {t.task_id for t in tasks}
    operators = {r.task_id: r.operator or "" for r in cell_rows if r.task_id not in known}
    tasks += [GridTask(t, t, operators[t], (), 0) for t in sorted(operators)]
    return Grid(
        dag_id=dag_id,
        runs=[_summary(r) for r in reversed(run_rows)],
        tasks=tasks,
        cells=cells,
        groups=_groups(dag) if dag is not None else {},
    )


def graph(factory: sessionmaker[Session], dag_id: str, run_id: str | None = None) -> Graph:
    """The tasks and edges of ``dag_id``: of the version ``run_id`` ran, with its task
    states, or of the latest version."""
    states: dict[str, str] = {}
    with transaction(factory, readonly=True) as session:
        if run_id is None:
            dag = _latest(session, dag_id)
        else:
            run = require_run(session, dag_id, run_id)
            dag = _version_of(session, run)
            rows = store.task_instance_cells(session, dag_id, [run_id])
            states = {r.task_id: r.state for r in rows}
    if dag is None:
        return Graph(dag_id, [], [], [])
    fg = {t["task_id"]: t.get("ui_fgcolor") or "#000" for t in dag.data["tasks"]}
    nodes = [
        Node(
            task_id=task_id,
            label=_label(dag, task_id),
            operator=dag.task_dict[task_id].operator,
            group=dag.task_dict[task_id].task_group,
            state=states.get(task_id),
            ui_color=dag.task_dict[task_id].ui_color,
            ui_fgcolor=fg[task_id],
        )
        for task_id in dag.topological_order()
    ]
    edges = sorted(
        (upstream, task.task_id)
        for task in dag.task_dict.values()
        for upstream in task.upstream_task_ids
        if upstream in dag.task_dict
    )
    return Graph(dag_id, nodes, edges, list(_groups(dag).values()))


def gantt(factory: sessionmaker[Session], dag_id: str, run_id: str) -> list[GanttBar]:
    """Every try of every task of one run: tasks in dependency order, earlier tries first."""
    with transaction(factory, readonly=True) as session:
        run = require_run(session, dag_id, run_id)
        dag = _version_of(session, run)
        current, finished = store.tries_of_run(session, dag_id, run_id)
    bars = [_bar(r) for r in finished]
    ended = {(r.task_id, r.try_number) for r in finished}
    for row in current:
        # The current try has a bar of its own while it is queued or running; once it
        # ended, its history row (its final state) is the bar. A task cleared before it
        # ever ran has no try to show.
        in_flight = row.state in _ACTIVE_TRY_STATES
        if (
            row.try_number >= 1
            and (row.task_id, row.try_number) not in ended
            and (in_flight or row.start_date is not None)
        ):
            bars.append(_bar(row))
    order = _order(dag)
    bars.sort(key=lambda b: (order.get(b.task_id, len(order)), b.task_id, b.try_number))
    return bars


def dag_source(factory: sessionmaker[Session], dag_id: str) -> DagSource:
    """The source of the file defining ``dag_id``, as the DAG processor last parsed it."""
    with transaction(factory, readonly=True) as session:
        row = dag_store.get(session, dag_id)
        if row is None:
            raise _not_found(session, dag_id)
        code = dag_store.get_code(session, row.fileloc)
    if code is None:
        raise NotFoundError(
            f"the source of DAG {dag_id!r} ({row.fileloc}) is not stored: its file is gone, "
            "or has not been parsed since the DAG processor began storing sources "
            "(`slipstream dags reserialize` stores it now)"
        )
    return DagSource(code.fileloc, code.source, code.updated_at)


def task_detail(factory: sessionmaker[Session], dag_id: str, task_id: str) -> dict[str, Any]:
    """The settings of one task of the latest version of ``dag_id``, JSON-ready: durations
    in seconds, template fields with their unrendered templates (sensitive keys masked)."""
    with transaction(factory, readonly=True) as session:
        dag = _latest(session, dag_id)
    data = (
        None
        if dag is None
        else next((t for t in dag.data["tasks"] if t["task_id"] == task_id), None)
    )
    if dag is None or data is None:
        message = f"DAG {dag_id!r} has no task {task_id!r}"
        close = difflib.get_close_matches(task_id, dag.task_ids if dag else [], n=3)
        if close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        raise TaskNotFound(message)
    templates = data.get("template_values") or {}
    return {
        "dag_id": dag_id,
        "task_id": task_id,
        "label": _label(dag, task_id),
        "task_group": data.get("task_group"),
        "operator": data["operator"],
        "operator_class": data["operator_class"],
        "operator_module": data["operator_module"],
        "owner": data["owner"],
        "retries": data["retries"],
        "retry_delay": data["retry_delay"],
        "retry_exponential_backoff": data["retry_exponential_backoff"],
        "max_retry_delay": data["max_retry_delay"],
        "execution_timeout": data["execution_timeout"],
        "pool": data["pool"],
        "pool_slots": data["pool_slots"],
        "queue": data["queue"],
        "priority_weight": data["priority_weight"],
        "weight_rule": data["weight_rule"],
        "priority_weight_total": data["priority_weight_total"],
        "trigger_rule": data["trigger_rule"],
        "depends_on_past": data["depends_on_past"],
        "wait_for_downstream": data["wait_for_downstream"],
        "template_fields": {
            name: redact_value(templates.get(name), name) for name in data["template_fields"]
        },
        "python_callable": data.get("python_callable"),
        "doc_md": data["doc_md"],
        "ui_color": data["ui_color"],
        "ui_fgcolor": data.get("ui_fgcolor"),
        "upstream_task_ids": sorted(data["upstream_task_ids"]),
        "downstream_task_ids": sorted(data["downstream_task_ids"]),
    }


# --- helpers ---------------------------------------------------------------------------


def grid_rows(dag: SerializedDag) -> list[GridTask]:
    """The tasks of ``dag`` as grid rows: dependency order, except that a TaskGroup's tasks
    stay together, the group placed where its first task falls (as Airflow's grid does)."""
    position = {t: i for i, t in enumerate(dag.topological_order())}
    groups = dag.task_groups
    children: dict[str | None, list[str]] = {None: []}
    for group in groups.values():
        parent = group.parent_group_id if group.parent_group_id in groups else None
        children.setdefault(parent, []).append(group.group_id)
        children.setdefault(group.group_id, [])
    for task in dag.task_dict.values():
        holder = task.task_group if task.task_group in groups else None
        children[holder].append(task.task_id)
    first: dict[str, float] = {}

    def first_of(item: str) -> float:
        if item not in first:
            if item in groups:
                first[item] = min((first_of(c) for c in children[item]), default=math.inf)
            else:
                first[item] = position[item]
        return first[item]

    rows: list[GridTask] = []

    def walk(parent: str | None, path: tuple[str, ...]) -> None:
        for item in sorted(children[parent], key=lambda i: (first_of(i), i)):
            if item in groups:
                walk(item, (*path, item))
            else:
                task = dag.task_dict[item]
                rows.append(GridTask(item, _label(dag, item), task.operator, path, len(path)))

    walk(None, ())
    return rows


def _label(dag: SerializedDag, task_id: str) -> str:
    group = dag.task_groups.get(dag.task_dict[task_id].task_group or "")
    if group is not None and group.prefix_group_id and task_id.startswith(group.group_id + "."):
        return task_id[len(group.group_id) + 1 :]
    return task_id


def _groups(dag: SerializedDag) -> dict[str, GroupInfo]:
    return {
        g.group_id: GroupInfo(
            g.group_id, g.label, g.parent_group_id, g.tooltip, g.ui_color, g.ui_fgcolor
        )
        for g in dag.task_groups.values()
    }


def _order(dag: SerializedDag | None) -> dict[str, int]:
    return {} if dag is None else {t: i for i, t in enumerate(dag.topological_order())}


def _bar(row: Row[Any]) -> GanttBar:
    return GanttBar(
        row.task_id, row.try_number, row.state, row.queued_at, row.start_date, row.end_date
    )


def _latest(session: Session, dag_id: str) -> SerializedDag | None:
    """The latest serialized version of ``dag_id`` (None if it was never serialized);
    DagNotFound, naming close ids, when there is no such DAG."""
    row = dag_store.get(session, dag_id)
    if row is None:
        raise _not_found(session, dag_id)
    version = (
        dag_store.get_version(session, row.latest_version_id) if row.latest_version_id else None
    )
    return _serialized(version)


def _version_of(session: Session, run: DagRun) -> SerializedDag | None:
    """The version ``run`` ran with, or the latest one if that is gone."""
    version = dag_store.get_version(session, run.dag_version_id) if run.dag_version_id else None
    return _serialized(version or dag_store.latest_version(session, run.dag_id))


def _serialized(version: DagVersion | None) -> SerializedDag | None:
    return None if version is None else SerializedDag.from_dict(version.data)
