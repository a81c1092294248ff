"""The DAG list (search, tags, pagination, pause toggles, recent runs, next run, import
errors), pausing a DAG from a form, and the recent runs' states for the list's live dots."""

from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.context import services
from slipstream.service import dags as dag_service
from slipstream.service import overview
from slipstream.service import runs as run_service
from slipstream.web.views.blueprint import blueprint, needs
from slipstream.web.views.common import act, acting_user, page_number, safe_back

PAGE_SIZE = 50
RECENT_RUNS = 10
#: the most DAGs one recent-runs request may ask about (a page of the list)
MAX_DAG_IDS = 200


@blueprint.route("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("pages.dag_list"))


@blueprint.route("/dags")
@needs(Permission.READ)
def dag_list() -> ResponseReturnValue:
    svc = services()
    search = request.args.get("search", "").strip() or None
    tags = [t for t in request.args.getlist("tags") if t]
    number = page_number()
    page = dag_service.find_dags(
        svc.session_factory,
        search=search,
        tags=tags,
        limit=PAGE_SIZE,
        offset=(number - 1) * PAGE_SIZE,
    )
    dag_ids = [dag.dag_id for dag in page.items]
    recent = overview.recent_runs(svc.session_factory, dag_ids, per_dag=RECENT_RUNS)
    return render_template(
        "dag_list.html",
        page=page,
        search=search or "",
        tags=tags,
        all_tags=dag_service.all_tags(svc.session_factory),
        import_errors=dag_service.list_import_errors(svc.session_factory),
        recent=recent,
        page_number=number,
        page_size=PAGE_SIZE,
    )


@blueprint.route("/dags/<dag_id>/pause", methods=["POST"])
@needs(Permission.OPERATE)
def pause(dag_id: str) -> ResponseReturnValue:
    """Pause (``paused=true``) or unpause (``paused=false``) a DAG; the form's answer to
    the pause toggle when the page runs without JavaScript."""
    svc = services()
    back = safe_back(url_for("pages.dag_list"))

    def _do() -> str:
        wanted = request.form.get("paused", "").lower()
        if wanted not in {"true", "false"}:
            raise InvalidInputError("paused must be true or false")
        paused = wanted == "true"
        run_service.set_paused(
            svc.session_factory,
            dag_id,
            paused,
            now=svc.now(),
            actor=acting_user().username,
            database_url=svc.database_url,
        )
        return f"DAG {dag_id} is {'paused' if paused else 'unpaused'}."

    return act(_do, back)


def run_json(dag_id: str, run: Any) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "state": run.state,
        "run_type": run.run_type,
        "logical_date": _iso(run.logical_date),
        "url": url_for("pages.run_page", dag_id=dag_id, run_id=run.run_id),
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


@blueprint.route("/ui/dags/recent-runs")
@needs(Permission.READ)
def recent_runs_json() -> ResponseReturnValue:
    """``{dag_id: [run, ...]}`` (newest first) for the DAG list's live dots."""
    dag_ids = [d for d in request.args.getlist("dag_id") if d][:MAX_DAG_IDS]
    recent = overview.recent_runs(services().session_factory, dag_ids, per_dag=RECENT_RUNS)
    return jsonify(
        {dag_id: [run_json(dag_id, run) for run in runs] for dag_id, runs in recent.items()}
    )
