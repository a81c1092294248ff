"""One task instance: its state and details, why it waits, its rendered template fields
beside their templates, the log of each try (tailed live while the try runs), its XComs
and tries; clearing it and marking it success or failed."""

from __future__ import annotations

import json
from typing import Any

from flask import jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.errors import InvalidInputError, NotFoundError
from slipstream.roles import Permission
from slipstream.security.context import services
from slipstream.service import clearing, inspection, marking, overview, waiting, xcoms
from slipstream.states import TaskInstanceState
from slipstream.web.views.blueprint import blueprint, needs
from slipstream.web.views.common import (
    act,
    acting_user,
    dag_header,
    form_flag,
    safe_back,
)

#: the most of a log the page shows at once (its end: the latest lines matter most)
LOG_BYTES = 512 * 1024
#: what the task page offers to mark a task instance
TASK_MARKS = ("success", "failed")
_WAITING = frozenset(
    {
        TaskInstanceState.NONE.value,
        TaskInstanceState.SCHEDULED.value,
        TaskInstanceState.QUEUED.value,
        TaskInstanceState.UP_FOR_RETRY.value,
    }
)


def _try_number(latest: int) -> int | None:
    text = request.args.get("try", "").strip()
    if not text:
        return latest if latest >= 1 else None
    try:
        number = int(text)
    except ValueError:
        raise InvalidInputError(f"try must be a whole number, not {text[:40]!r}") from None
    if not 1 <= number <= max(latest, 1):
        raise NotFoundError(f"there is no try {number}: this task instance has had {latest}")
    return number


def _log(dag_id: str, run_id: str, task_id: str, try_number: int | None) -> dict[str, Any]:
    """The log of the try as the page shows it: its text (the end of it when long) or why
    there is none, and where a live tail continues."""
    svc = services()
    if try_number is None:
        return {"text": None, "note": "This task has not started yet: it has no log."}
    try:
        log = inspection.find_try_log(
            svc.session_factory,
            svc.config.log_folder,
            dag_id,
            run_id,
            task_id,
            try_number,
            wait=True,
        )
    except NotFoundError as exc:
        return {"text": None, "note": str(exc)[:1].upper() + str(exc)[1:] + "."}
    size = inspection.log_size(log)  # (from the database when the try ran on another host)
    start = max(0, size - LOG_BYTES)
    chunk = inspection.read_log_chunk(log, start, LOG_BYTES)
    note = None
    if start:
        note = f"The log is {size} bytes long: only its last {LOG_BYTES // 1024} KiB are shown."
    return {"text": chunk.content, "note": note, "next_offset": chunk.next_offset, "live": log.live}


def _waiting(dag_id: str, run_id: str, task_id: str, state: str) -> list[str]:
    if state not in _WAITING:
        return []
    svc = services()
    return waiting.explain_waiting(
        svc.session_factory, dag_id, run_id, task_id, now=svc.now(), config=svc.config
    )


def _template_fields(dag_id: str, task_id: str, rendered: dict[str, Any] | None) -> list[Any]:
    """(field, template, rendered) per template field; None stands for "not rendered"."""
    try:
        detail = overview.task_detail(services().session_factory, dag_id, task_id)
        templates: dict[str, Any] = detail["template_fields"]
    except NotFoundError:  # the latest version of the DAG no longer has the task
        templates = {}
    names = list(templates) + [n for n in (rendered or {}) if n not in templates]
    return [(n, templates.get(n), (rendered or {}).get(n, None)) for n in names]


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, default=str)


@blueprint.route("/dags/<dag_id>/runs/<run_id>/tasks/<task_id>")
@needs(Permission.READ)
def task_page(dag_id: str, run_id: str, task_id: str) -> ResponseReturnValue:
    svc = services()
    dag = dag_header(dag_id)
    ti = inspection.get_task_instance(svc.session_factory, dag_id, run_id, task_id)
    tries: list[Any] = inspection.try_history(svc.session_factory, dag_id, run_id, task_id)
    if ti.try_number >= 1 and all(t.try_number != ti.try_number for t in tries):
        tries.append(ti)  # the current try: no history row until it ends
    selected = _try_number(ti.try_number)
    return render_template(
        "task_instance.html",
        dag=dag,
        tab="Runs",
        run_id=run_id,
        ti=ti,
        tries=tries,
        try_numbers=list(range(1, ti.try_number + 1)),
        selected=selected,
        log=_log(dag_id, run_id, task_id, selected),
        waiting=_waiting(dag_id, run_id, task_id, ti.state),
        fields=_template_fields(dag_id, task_id, ti.rendered_fields),
        rendered_yet=ti.rendered_fields is not None,
        xcoms=xcoms.list_xcoms(svc.session_factory, dag_id, run_id, task_id),
        shown=_shown,
        marks=TASK_MARKS,
    )


@blueprint.route("/ui/dags/<dag_id>/runs/<run_id>/tasks/<task_id>")
@needs(Permission.READ)
def task_data(dag_id: str, run_id: str, task_id: str) -> ResponseReturnValue:
    """The task instance's state, try and why it waits, for its page's live refresh."""
    ti = inspection.get_task_instance(services().session_factory, dag_id, run_id, task_id)
    return jsonify(
        {
            "state": ti.state,
            "try_number": ti.try_number,
            "waiting": _waiting(dag_id, run_id, task_id, ti.state),
        }
    )


def _page(dag_id: str, run_id: str, task_id: str) -> str:
    return url_for("pages.task_page", dag_id=dag_id, run_id=run_id, task_id=task_id)


@blueprint.route("/dags/<dag_id>/runs/<run_id>/tasks/<task_id>/clear", methods=["POST"])
@needs(Permission.OPERATE)
def clear_task(dag_id: str, run_id: str, task_id: str) -> ResponseReturnValue:
    svc = services()
    inspection.get_task_instance(svc.session_factory, dag_id, run_id, task_id)  # 404s
    back = safe_back(_page(dag_id, run_id, task_id))

    def _do() -> str:
        result = clearing.clear_tasks(
            svc.session_factory,
            dag_id,
            now=svc.now(),
            task_ids=[task_id],
            upstream=form_flag("upstream"),
            downstream=form_flag("downstream"),
            only_failed=form_flag("only_failed"),
            run_id=run_id,
            actor=acting_user().username,
            database_url=svc.database_url,
        )
        if not result.tasks:
            return f"Nothing to clear: no chosen task instance of run {run_id} has run."
        ids = ", ".join(t.task_id for t in result.tasks)
        return f"Cleared {clearing.summarize(result.tasks)}: {ids}."

    return act(_do, back)


@blueprint.route("/dags/<dag_id>/runs/<run_id>/tasks/<task_id>/mark", methods=["POST"])
@needs(Permission.OPERATE)
def mark_task(dag_id: str, run_id: str, task_id: str) -> ResponseReturnValue:
    svc = services()
    inspection.get_task_instance(svc.session_factory, dag_id, run_id, task_id)  # 404s
    back = safe_back(_page(dag_id, run_id, task_id))

    def _do() -> str:
        state = request.form.get("state", "")
        if state not in TASK_MARKS:
            raise InvalidInputError(
                f"a task instance can be marked {' or '.join(TASK_MARKS)}, not {state[:40]!r}"
            )
        changed = marking.mark_task_instances(
            svc.session_factory,
            dag_id,
            run_id,
            [task_id],
            state,
            now=svc.now(),
            actor=acting_user().username,
            database_url=svc.database_url,
            include_upstream=form_flag("upstream"),
            include_downstream=form_flag("downstream"),
        )
        if not changed:
            return f"Nothing changed: the chosen task instances were {state} already."
        return f"Marked {state}: {', '.join(changed)}."

    return act(_do, back)
