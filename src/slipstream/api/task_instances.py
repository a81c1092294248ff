"""Task instances: list a run's, get one, mark (success, failed, skipped), clear, and the
history of each one's tries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slipstream.api.blueprint import registry
from slipstream.api.common import body_datetime, iso
from slipstream.api.registry import Query
from slipstream.api.runs import CLEAR_OPTIONS, RUN_ID, clear_json
from slipstream.api.schemas import COMPONENTS, DATETIME, nullable, page_of, ref
from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.auth import require
from slipstream.security.context import services
from slipstream.service import clearing, inspection
from slipstream.service import marking as mark_service
from slipstream.service import runs as run_service
from slipstream.states import TaskInstanceState
from slipstream.store.models import TaskInstance, TaskInstanceHistory

TI_STATES = [s.value for s in TaskInstanceState]

#: what a task instance and each of its tries show alike
_TRY_PROPERTIES: dict[str, Any] = {
    "dag_id": {"type": "string"},
    "dag_run_id": {"type": "string"},
    "task_id": {"type": "string"},
    "map_index": {"type": "integer"},
    "try_number": {"type": "integer", "minimum": 0},
    "max_tries": {"type": "integer"},
    "state": {"type": "string", "enum": TI_STATES},
    "operator": nullable("string"),
    "pool": {"type": "string"},
    "pool_slots": {"type": "integer"},
    "queue": {"type": "string"},
    "priority_weight": {"type": "integer"},
    "hostname": nullable("string"),
    "pid": nullable("integer"),
    "queued_when": DATETIME,
    "start_date": DATETIME,
    "end_date": DATETIME,
    "duration": nullable("number", description="seconds"),
    "error": nullable("string", description="why the try ended badly, if it did"),
}
_TRY_REQUIRED = ["dag_id", "dag_run_id", "task_id", "map_index", "try_number", "state"]
COMPONENTS["TaskInstance"] = {
    "type": "object",
    "required": _TRY_REQUIRED,
    "properties": {
        **_TRY_PROPERTIES,
        "next_retry_at": DATETIME,
        "rendered_fields": nullable(
            "object", description="template fields as the latest try rendered them, masked"
        ),
    },
}
COMPONENTS["TaskInstanceCollection"] = page_of("task_instances", "TaskInstance")
COMPONENTS["TaskInstanceTry"] = {
    "type": "object",
    "required": _TRY_REQUIRED,
    "properties": _TRY_PROPERTIES,
}
COMPONENTS["TaskInstanceTryCollection"] = page_of("task_instances", "TaskInstanceTry")
COMPONENTS["TaskInstanceReference"] = {
    "type": "object",
    "required": ["dag_id", "dag_run_id", "task_id"],
    "properties": {
        "dag_id": {"type": "string"},
        "dag_run_id": {"type": "string"},
        "task_id": {"type": "string"},
    },
}
COMPONENTS["TaskInstanceReferenceCollection"] = page_of("task_instances", "TaskInstanceReference")

_TI_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances"


def _try_json(row: TaskInstance | TaskInstanceHistory) -> dict[str, Any]:
    return {
        "dag_id": row.dag_id,
        "dag_run_id": row.run_id,
        "task_id": row.task_id,
        "map_index": row.map_index,
        "try_number": row.try_number,
        "max_tries": row.max_tries,
        "state": row.state,
        "operator": row.operator,
        "pool": row.pool,
        "pool_slots": row.pool_slots,
        "queue": row.queue,
        "priority_weight": row.priority_weight,
        "hostname": row.hostname,
        "pid": row.pid,
        "queued_when": iso(row.queued_at),
        "start_date": iso(row.start_date),
        "end_date": iso(row.end_date),
        "duration": row.duration,
        "error": row.error,
    }


def ti_json(ti: TaskInstance) -> dict[str, Any]:
    return {
        **_try_json(ti),
        "next_retry_at": iso(ti.next_retry_at),
        "rendered_fields": ti.rendered_fields,
    }


@registry.route(
    _TI_PATH,
    "GET",
    summary="List a run's task instances, in the DAG's dependency order",
    tag="TaskInstance",
    query=(Query("state", {"type": "array", "items": {"type": "string", "enum": TI_STATES}}),),
    response=ref("TaskInstanceCollection"),
)
def list_task_instances(dag_id: str, dag_run_id: str, query: dict[str, Any]) -> dict[str, Any]:
    rows = inspection.task_instances(services().session_factory, dag_id, dag_run_id)
    if query["state"]:
        rows = [ti for ti in rows if ti.state in query["state"]]
    return {"task_instances": [ti_json(ti) for ti in rows], "total_entries": len(rows)}


@registry.route(
    _TI_PATH + "/{task_id}",
    "GET",
    summary="Get a task instance",
    tag="TaskInstance",
    response=ref("TaskInstance"),
)
def get_task_instance(dag_id: str, dag_run_id: str, task_id: str) -> dict[str, Any]:
    ti = inspection.get_task_instance(services().session_factory, dag_id, dag_run_id, task_id)
    return ti_json(ti)


@registry.route(
    _TI_PATH + "/{task_id}",
    "PATCH",
    summary="Mark a task instance (and its upstream or downstream tasks) success or failed",
    tag="TaskInstance",
    permission=Permission.OPERATE,
    body={
        "type": "object",
        "required": ["new_state"],
        "properties": {
            "new_state": {"type": "string", "enum": list(mark_service.TASK_MARK_STATES)},
            "include_upstream": {"type": "boolean", "default": False},
            "include_downstream": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
    },
    response=ref("TaskInstanceReferenceCollection"),
)
def mark_task_instance(
    dag_id: str, dag_run_id: str, task_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A running try that is marked stops (its worker sees the change at its next
    heartbeat) and the state set here stays. The answer lists the task instances whose
    state changed."""
    who = require(Permission.OPERATE)
    svc = services()
    changed = mark_service.mark_task_instances(
        svc.session_factory,
        dag_id,
        dag_run_id,
        [task_id],
        body["new_state"],
        now=svc.now(),
        actor=who.username,
        database_url=svc.database_url,
        include_upstream=body.get("include_upstream", False),
        include_downstream=body.get("include_downstream", False),
    )
    refs = [{"dag_id": dag_id, "dag_run_id": dag_run_id, "task_id": t} for t in changed]
    return {"task_instances": refs, "total_entries": len(refs)}


@registry.route(
    _TI_PATH + "/{task_id}/tries",
    "GET",
    summary="The tries of a task instance, first first",
    tag="TaskInstance",
    response=ref("TaskInstanceTryCollection"),
)
def list_tries(dag_id: str, dag_run_id: str, task_id: str) -> dict[str, Any]:
    """Every finished try, and the current one while it is queued or running."""
    factory = services().session_factory
    tries = [_try_json(row) for row in inspection.try_history(factory, dag_id, dag_run_id, task_id)]
    ti = inspection.get_task_instance(factory, dag_id, dag_run_id, task_id)
    if ti.try_number >= 1 and all(t["try_number"] != ti.try_number for t in tries):
        tries.append(_try_json(ti))
    return {"task_instances": tries, "total_entries": len(tries)}


def _dag_date(dag_id: str, text: str | None, field: str) -> datetime | None:
    """A date of the body in UTC; one without a time zone is in the DAG's time zone."""
    value = body_datetime(text, field)
    if value is None:
        return None
    return run_service.dag_logical_date(services().session_factory, dag_id, value)


@registry.route(
    "/dags/{dag_id}/clearTaskInstances",
    "POST",
    summary="Clear task instances so they run again",
    tag="TaskInstance",
    permission=Permission.OPERATE,
    body={
        "type": "object",
        "properties": {
            "dag_run_id": {**RUN_ID, "description": "only this run (default: every run)"},
            "task_ids": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 250},
                "minItems": 1,
                "maxItems": 10000,
                "description": "only these tasks (default: every task)",
            },
            "start_date": nullable(
                "string", format="date-time", description="runs with a logical date from this"
            ),
            "end_date": nullable(
                "string", format="date-time", description="runs with a logical date up to this"
            ),
            "include_upstream": {"type": "boolean", "default": False},
            "include_downstream": {"type": "boolean", "default": False},
            **CLEAR_OPTIONS,
        },
        "additionalProperties": False,
    },
    response=ref("ClearResult"),
)
def clear_task_instances(dag_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Cleared task instances go back to state none with their retries again; finished
    runs with a cleared task go back to queued. Dates without a time zone are in the DAG's
    time zone."""
    who = require(Permission.OPERATE)
    svc = services()
    start, end = (_dag_date(dag_id, body.get(name), name) for name in ("start_date", "end_date"))
    if start is not None and end is not None and start > end:
        raise InvalidInputError(
            f"start_date {start.isoformat()} is after end_date {end.isoformat()}"
        )
    result = clearing.clear_tasks(
        svc.session_factory,
        dag_id,
        now=svc.now(),
        task_ids=body.get("task_ids"),
        upstream=body.get("include_upstream", False),
        downstream=body.get("include_downstream", False),
        only_failed=body.get("only_failed", False),
        run_id=body.get("dag_run_id"),
        start_date=start,
        end_date=end,
        dry_run=body.get("dry_run", True),
        actor=who.username,
        database_url=svc.database_url,
    )
    return clear_json(result)
