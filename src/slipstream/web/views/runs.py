"""One DAG run: its state, conf, dates, Gantt chart and task instances; clearing it and
marking it success or failed (after a page that lists what the mark will change)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.context import services
from slipstream.service import clearing, inspection, marking, overview
from slipstream.service import runs as run_service
from slipstream.states import FINISHED_TI_STATES, TaskInstanceState
from slipstream.web.views import gantt
from slipstream.web.views.blueprint import blueprint, needs
from slipstream.web.views.common import (
    ACTIVE_RUN_STATES,
    act,
    acting_user,
    dag_header,
    form_flag,
    safe_back,
)

#: what the run page offers to mark a run (the service also knows "queued")
RUN_MARKS = ("success", "failed")
_FINISHED = frozenset(s.value for s in FINISHED_TI_STATES)
_IN_FLIGHT = frozenset({"queued", "running", "restarting"})


def _chart(dag_id: str, run_id: str) -> gantt.Chart:
    svc = services()
    return gantt.chart(overview.gantt(svc.session_factory, dag_id, run_id), svc.now())


@blueprint.route("/dags/<dag_id>/runs/<run_id>")
@needs(Permission.READ)
def run_page(dag_id: str, run_id: str) -> ResponseReturnValue:
    svc = services()
    dag = dag_header(dag_id)
    run = run_service.get_run(svc.session_factory, dag_id, run_id)
    tis = inspection.task_instances(svc.session_factory, dag_id, run_id)
    return render_template(
        "run.html",
        dag=dag,
        tab="Runs",
        run=run,
        tis=tis,
        chart=_chart(dag_id, run_id),
        live=run.state in ACTIVE_RUN_STATES,
        marks=RUN_MARKS,
        failed_count=sum(1 for ti in tis if ti.state in clearing.FAILED_STATES),
    )


@blueprint.route("/ui/dags/<dag_id>/runs/<run_id>")
@needs(Permission.READ)
def run_data(dag_id: str, run_id: str) -> ResponseReturnValue:
    """The run's state, its task instances' states and the Gantt chart (as SVG markup,
    drawn by the same template as the page) for the run page's live refresh."""
    svc = services()
    run = run_service.get_run(svc.session_factory, dag_id, run_id)
    tis = inspection.task_instances(svc.session_factory, dag_id, run_id)
    return jsonify(
        {
            "state": run.state,
            "live": run.state in ACTIVE_RUN_STATES,
            "start_date": _iso(run.start_date),
            "end_date": _iso(run.end_date),
            "task_instances": [
                {
                    "task_id": ti.task_id,
                    "state": ti.state,
                    "try_number": ti.try_number,
                    "start_date": _iso(ti.start_date),
                    "end_date": _iso(ti.end_date),
                    "duration": ti.duration,
                }
                for ti in tis
            ],
            "gantt": render_template("_gantt.html", chart=_chart(dag_id, run_id)).strip(),
        }
    )


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


@blueprint.route("/dags/<dag_id>/runs/<run_id>/clear", methods=["POST"])
@needs(Permission.OPERATE)
def clear_run(dag_id: str, run_id: str) -> ResponseReturnValue:
    svc = services()
    back = safe_back(url_for("pages.run_page", dag_id=dag_id, run_id=run_id))
    only_failed = form_flag("only_failed")
    run_service.get_run(svc.session_factory, dag_id, run_id)  # 404 for an unknown run

    def _do() -> str:
        result = clearing.clear_tasks(
            svc.session_factory,
            dag_id,
            now=svc.now(),
            run_id=run_id,
            only_failed=only_failed,
            actor=acting_user().username,
            database_url=svc.database_url,
        )
        if not result.tasks:
            what = "failed task instances" if only_failed else "task instances that ran"
            return f"Nothing to clear: run {run_id} has no {what}."
        return f"Cleared {clearing.summarize(result.tasks)}: run {run_id} runs them again."

    return act(_do, back)


def _mark_state() -> str:
    state = (request.values.get("state") or "").strip()
    if state not in RUN_MARKS:
        raise InvalidInputError(f"a run can be marked {' or '.join(RUN_MARKS)}, not {state!r}")
    return state


def mark_preview(tis: list[Any], state: str) -> list[tuple[str, str, str]]:
    """(task_id, old state, new state) of each task instance marking the run ``state``
    changes: success finishes every unfinished one as success; failed fails those queued
    or running and skips those not started (as ``marking.mark_run`` does)."""
    changes = []
    for ti in tis:
        if ti.state in _FINISHED:
            continue
        if state == "success":
            new = TaskInstanceState.SUCCESS.value
        else:
            new = "failed" if ti.state in _IN_FLIGHT else TaskInstanceState.SKIPPED.value
        changes.append((ti.task_id, ti.state, new))
    return changes


@blueprint.route("/dags/<dag_id>/runs/<run_id>/mark", methods=["GET", "POST"])
@needs(Permission.OPERATE)
def mark_run(dag_id: str, run_id: str) -> ResponseReturnValue:
    """GET: what marking the run would change, and a button to confirm; POST: mark it."""
    svc = services()
    dag = dag_header(dag_id)
    run = run_service.get_run(svc.session_factory, dag_id, run_id)
    page = url_for("pages.run_page", dag_id=dag_id, run_id=run_id)
    if request.method == "POST":

        def _do() -> str:
            state = _mark_state()
            marking.mark_run(
                svc.session_factory,
                dag_id,
                run_id,
                state,
                now=svc.now(),
                actor=acting_user().username,
                database_url=svc.database_url,
            )
            return f"Marked run {run_id} {state}."

        return act(_do, page)
    state = _mark_state()
    tis = inspection.task_instances(svc.session_factory, dag_id, run_id)
    return render_template(
        "confirm_mark_run.html",
        dag=dag,
        tab="Runs",
        run=run,
        state=state,
        changes=mark_preview(tis, state),
    )
