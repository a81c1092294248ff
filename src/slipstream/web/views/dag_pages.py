"""The tabs of one DAG: grid, graph, runs, code and details, and the JSON their scripts
poll to keep states live (the grid's runs and cells, the graph's node states)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.context import services
from slipstream.service import dags as dag_service
from slipstream.service import inspection, overview
from slipstream.service import runs as run_service
from slipstream.states import DagRunState
from slipstream.web.views.blueprint import blueprint, needs
from slipstream.web.views.common import ACTIVE_RUN_STATES, dag_header, page_number
from slipstream.web.views.dags import run_json

GRID_RUNS = 25
RUNS_PAGE_SIZE = 50
NEXT_RUNS = 5


@blueprint.route("/dags/<dag_id>")
@needs(Permission.READ)
def dag_page(dag_id: str) -> ResponseReturnValue:
    dag_header(dag_id)  # an unknown DAG is a 404 here, not on the page it would lead to
    return redirect(url_for("pages.grid", dag_id=dag_id))


def _before() -> Any:
    text = request.args.get("before", "").strip()
    return run_service.parse_date(text, "before") if text else None


@blueprint.route("/dags/<dag_id>/grid")
@needs(Permission.READ)
def grid(dag_id: str) -> ResponseReturnValue:
    dag = dag_header(dag_id)
    before = _before()
    data = overview.grid(services().session_factory, dag_id, runs=GRID_RUNS, before=before)
    older = None
    if len(data.runs) == GRID_RUNS:
        oldest = data.runs[0]
        older = url_for("pages.grid", dag_id=dag_id, before=oldest.run_after.isoformat())
    return render_template(
        "dag_grid.html",
        dag=dag,
        tab="Grid",
        grid=data,
        rows=grid_rows(data),
        before=before,
        older=older,
        live=_grid_live(data),
    )


def grid_rows(data: overview.Grid) -> list[tuple[str, Any]]:
    """The grid's rows as shown: a header row where a TaskGroup starts, then its tasks
    (indented by depth). ``("group", (group_id, label, depth))`` or ``("task", GridTask)``."""
    rows: list[tuple[str, Any]] = []
    path: tuple[str, ...] = ()
    for task in data.tasks:
        common = 0
        while common < min(len(path), len(task.group)) and path[common] == task.group[common]:
            common += 1
        for depth in range(common, len(task.group)):
            group_id = task.group[depth]
            info = data.groups.get(group_id)
            rows.append(("group", (group_id, info.label if info else group_id, depth)))
        path = task.group
        rows.append(("task", task))
    return rows


def _grid_live(data: overview.Grid) -> bool:
    return any(run.state in ACTIVE_RUN_STATES for run in data.runs)


def grid_json(dag_id: str, data: overview.Grid) -> dict[str, Any]:
    return {
        "runs": [run_json(dag_id, run) for run in data.runs],
        "tasks": [row.task_id for row in data.tasks],
        "cells": {
            f"{run_id}\x1f{task_id}": {
                "state": cell.state,
                "try_number": cell.try_number,
                "url": url_for("pages.task_page", dag_id=dag_id, run_id=run_id, task_id=task_id),
            }
            for (run_id, task_id), cell in data.cells.items()
        },
        "live": _grid_live(data),
    }


@blueprint.route("/ui/dags/<dag_id>/grid")
@needs(Permission.READ)
def grid_data(dag_id: str) -> ResponseReturnValue:
    """The grid's runs (oldest first) and cell states, for its live refresh."""
    data = overview.grid(services().session_factory, dag_id, runs=GRID_RUNS, before=_before())
    return jsonify(grid_json(dag_id, data))


def _graph_json(dag_id: str, data: overview.Graph, run_id: str | None) -> dict[str, Any]:
    def link(task_id: str) -> str | None:
        if run_id is None:
            return None
        return url_for("pages.task_page", dag_id=dag_id, run_id=run_id, task_id=task_id)

    return {
        "run_id": run_id,
        "nodes": [
            {
                "id": node.task_id,
                "label": node.label,
                "operator": node.operator,
                "group": node.group,
                "state": node.state,
                "url": link(node.task_id),
            }
            for node in data.nodes
        ],
        "edges": [list(edge) for edge in data.edges],
        "groups": [_group_json(g) for g in data.groups],
    }


def _group_json(group: overview.GroupInfo) -> dict[str, Any]:
    return {
        "group_id": group.group_id,
        "label": group.label,
        "parent": group.parent_group_id,
        "tooltip": group.tooltip,
    }


def _graph_run_id(dag_id: str) -> tuple[str | None, list[Any]]:
    """The run whose states the graph shows (?run_id=, default the newest) and the runs
    to choose from."""
    runs = inspection.list_runs(services().session_factory, dag_id, limit=GRID_RUNS)
    wanted = request.args.get("run_id") or None
    if wanted is None:
        return (runs[0].run_id if runs else None), runs
    return wanted, runs


@blueprint.route("/dags/<dag_id>/graph")
@needs(Permission.READ)
def graph(dag_id: str) -> ResponseReturnValue:
    dag = dag_header(dag_id)
    run_id, runs = _graph_run_id(dag_id)
    data = overview.graph(services().session_factory, dag_id, run_id)
    run = next((r for r in runs if r.run_id == run_id), None)
    if run is None and run_id is not None:
        run = run_service.get_run(services().session_factory, dag_id, run_id)
    return render_template(
        "dag_graph.html",
        dag=dag,
        tab="Graph",
        graph=_graph_json(dag_id, data, run_id),
        runs=runs,
        run=run,
        live=run is not None and run.state in ACTIVE_RUN_STATES,
    )


@blueprint.route("/ui/dags/<dag_id>/graph")
@needs(Permission.READ)
def graph_data(dag_id: str) -> ResponseReturnValue:
    """The graph's nodes with the states of ``run_id`` (for the graph's live refresh)."""
    run_id = request.args.get("run_id") or None
    svc = services()
    data = overview.graph(svc.session_factory, dag_id, run_id)
    payload = _graph_json(dag_id, data, run_id)
    if run_id is not None:
        run = run_service.get_run(svc.session_factory, dag_id, run_id)
        payload["run_state"] = run.state
        payload["live"] = run.state in ACTIVE_RUN_STATES
    return jsonify(payload)


@blueprint.route("/dags/<dag_id>/runs")
@needs(Permission.READ)
def runs(dag_id: str) -> ResponseReturnValue:
    dag = dag_header(dag_id)
    text = request.args.get("state", "").strip()
    state = None
    if text:
        try:
            state = DagRunState(text)
        except ValueError:
            choices = ", ".join(s.value for s in DagRunState)
            raise InvalidInputError(f"{text!r} is not a run state; use one of {choices}") from None
    number = page_number()
    # list_runs gives the newest N: ask for one page more than shown to know if there is a
    # next page.
    found = inspection.list_runs(
        services().session_factory, dag_id, state=state, limit=number * RUNS_PAGE_SIZE + 1
    )
    shown = found[(number - 1) * RUNS_PAGE_SIZE : number * RUNS_PAGE_SIZE]
    return render_template(
        "dag_runs.html",
        dag=dag,
        tab="Runs",
        runs=shown,
        state=state.value if state else "",
        states=[s.value for s in DagRunState],
        page_number=number,
        has_next=len(found) > number * RUNS_PAGE_SIZE,
    )


@blueprint.route("/dags/<dag_id>/code")
@needs(Permission.READ)
def code(dag_id: str) -> ResponseReturnValue:
    dag = dag_header(dag_id)
    source = overview.dag_source(services().session_factory, dag_id)
    return render_template(
        "dag_code.html", dag=dag, tab="Code", source=source, lines=source.source.splitlines()
    )


@blueprint.route("/dags/<dag_id>/details")
@needs(Permission.READ)
def details(dag_id: str) -> ResponseReturnValue:
    svc = services()
    dag = dag_header(dag_id)
    serialized = dag_service.get_dag(svc.session_factory, dag_id)
    next_runs: list[Any] = []
    schedule_note = None
    try:
        next_runs = dag_service.next_runs(svc.session_factory, dag_id, NEXT_RUNS, svc.now())
    except dag_service.NoScheduleError as exc:
        schedule_note = str(exc)
    order = serialized.topological_order()
    tasks = [serialized.task_dict[t] for t in order]
    return render_template(
        "dag_details.html",
        dag=dag,
        tab="Details",
        serialized=serialized,
        next_runs=next_runs,
        schedule_note=schedule_note,
        tasks=tasks,
        params=params_view(serialized.params),
    )


def params_view(params: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each param as the pages show it: name, default, description, schema type."""
    shown = []
    for name, spec in params.items():
        schema = spec.get("schema") or {}
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = " | ".join(str(k) for k in kind)
        if "enum" in schema:
            kind = f"enum ({', '.join(str(v) for v in schema['enum'])})"
        shown.append(
            {
                "name": name,
                "default": spec.get("default") if spec.get("has_default") else None,
                "has_default": bool(spec.get("has_default")),
                "description": spec.get("description"),
                "type": kind or "any",
                "schema": schema,
            }
        )
    return shown
