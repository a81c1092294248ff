"""DAGs: list (search, tags, paused; paginated), get, pause and unpause; what a DAG file
defines (details, tasks), read from the DAG's serialized form, never from the file."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slipstream.api.blueprint import registry
from slipstream.api.common import LIMIT, OFFSET, iso
from slipstream.api.registry import Query
from slipstream.api.schemas import COMPONENTS, DATETIME, nullable, page_of, ref
from slipstream.errors import TaskNotFound
from slipstream.roles import Permission
from slipstream.security.auth import require
from slipstream.security.context import services
from slipstream.serialization import SerializedTask
from slipstream.service import dags as dag_service
from slipstream.service import runs as run_service
from slipstream.store.models import Dag

COMPONENTS["DAG"] = {
    "type": "object",
    "required": ["dag_id", "is_paused", "is_active", "tags"],
    "properties": {
        "dag_id": {"type": "string"},
        "description": nullable("string"),
        "fileloc": {"type": "string"},
        "is_paused": {"type": "boolean"},
        "is_active": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "owners": nullable("string"),
        "timetable_summary": nullable("string"),
        "max_active_runs": nullable("integer"),
        "max_active_tasks": nullable("integer"),
        "last_parsed_at": DATETIME,
        "next_dagrun_logical_date": DATETIME,
        "next_dagrun_data_interval_start": DATETIME,
        "next_dagrun_data_interval_end": DATETIME,
        "next_dagrun_run_after": DATETIME,
    },
}
COMPONENTS["DAGCollection"] = page_of("dags", "DAG")


def dag_json(row: Dag) -> dict[str, Any]:
    return {
        "dag_id": row.dag_id,
        "description": row.description,
        "fileloc": row.fileloc,
        "is_paused": bool(row.is_paused),
        "is_active": bool(row.is_active),
        "tags": list(row.tags or []),
        "owners": row.owners,
        "timetable_summary": row.timetable_summary,
        "max_active_runs": row.max_active_runs,
        "max_active_tasks": row.max_active_tasks,
        "last_parsed_at": iso(row.last_parsed_at),
        "next_dagrun_logical_date": iso(row.next_dagrun),
        "next_dagrun_data_interval_start": iso(row.next_dagrun_data_interval_start),
        "next_dagrun_data_interval_end": iso(row.next_dagrun_data_interval_end),
        "next_dagrun_run_after": iso(row.next_dagrun_create_after),
    }


@registry.route(
    "/dags",
    "GET",
    summary="List DAGs",
    tag="DAG",
    query=(
        LIMIT,
        OFFSET,
        Query("dag_id_pattern", {"type": "string", "maxLength": 250}, "part of the DAG id"),
        Query("tags", {"type": "array", "items": {"type": "string"}}, "any of these tags"),
        Query("paused", {"type": "boolean"}, "only paused (true) or unpaused (false) DAGs"),
        Query("only_active", {"type": "boolean", "default": True}, "hide DAGs no file defines"),
    ),
    response=ref("DAGCollection"),
)
def list_dags(query: dict[str, Any]) -> dict[str, Any]:
    page = dag_service.find_dags(
        services().session_factory,
        search=query["dag_id_pattern"],
        tags=query["tags"] or (),
        paused=query["paused"],
        include_inactive=not query["only_active"],
        limit=query["limit"],
        offset=query["offset"],
    )
    return {"dags": [dag_json(row) for row in page.items], "total_entries": page.total}


@registry.route("/dags/{dag_id}", "GET", summary="Get a DAG", tag="DAG", response=ref("DAG"))
def get_dag(dag_id: str) -> dict[str, Any]:
    return dag_json(dag_service.get_dag_row(services().session_factory, dag_id))


@registry.route(
    "/dags/{dag_id}",
    "PATCH",
    summary="Pause or unpause a DAG",
    tag="DAG",
    permission=Permission.OPERATE,
    body={
        "type": "object",
        "required": ["is_paused"],
        "properties": {"is_paused": {"type": "boolean"}},
        "additionalProperties": False,
    },
    response=ref("DAG"),
)
def patch_dag(dag_id: str, body: dict[str, Any]) -> dict[str, Any]:
    who = require(Permission.OPERATE)
    svc = services()
    run_service.set_paused(
        svc.session_factory,
        dag_id,
        body["is_paused"],
        now=svc.now(),
        actor=who.username,
        database_url=svc.database_url,
    )
    return dag_json(dag_service.get_dag_row(svc.session_factory, dag_id))


# --- what the DAG file defines, from its serialized form ---------------------------------

_PARAM = {
    "type": "object",
    "required": ["default", "has_default", "description", "schema"],
    "properties": {
        "default": {"description": "the value a run gets when its conf does not set it"},
        "has_default": {"type": "boolean"},
        "description": nullable("string"),
        "schema": {"type": "object", "description": "the JSON schema a value must satisfy"},
    },
}
COMPONENTS["DAGDetail"] = {
    "allOf": [
        ref("DAG"),
        {
            "type": "object",
            "required": ["params", "task_count", "catchup", "timezone", "doc_md"],
            "properties": {
                "display_name": {"type": "string"},
                "timetable_description": nullable("string"),
                "timezone": {"type": "string"},
                "start_date": DATETIME,
                "end_date": DATETIME,
                "catchup": {"type": "boolean"},
                "dagrun_timeout": nullable("number", description="seconds"),
                "doc_md": nullable("string"),
                "is_paused_upon_creation": nullable("boolean"),
                "params": {"type": "object", "additionalProperties": _PARAM},
                "task_count": {"type": "integer", "minimum": 0},
                "task_ids": {"type": "array", "items": {"type": "string"}},
            },
        },
    ]
}
COMPONENTS["Task"] = {
    "type": "object",
    "required": ["task_id", "operator", "downstream_task_ids", "upstream_task_ids"],
    "properties": {
        "task_id": {"type": "string"},
        "operator": {"type": "string", "description": "the operator's display name"},
        "class_ref": {
            "type": "object",
            "properties": {"class_name": {"type": "string"}, "module_path": {"type": "string"}},
        },
        "owner": {"type": "string"},
        "retries": {"type": "integer"},
        "retry_delay": {"type": "number", "description": "seconds"},
        "retry_exponential_backoff": {"type": "boolean"},
        "max_retry_delay": nullable("number", description="seconds"),
        "execution_timeout": nullable("number", description="seconds"),
        "pool": {"type": "string"},
        "pool_slots": {"type": "integer"},
        "queue": {"type": "string"},
        "priority_weight": {"type": "integer"},
        "weight_rule": {"type": "string"},
        "trigger_rule": {"type": "string"},
        "depends_on_past": {"type": "boolean"},
        "wait_for_downstream": {"type": "boolean"},
        "template_fields": {"type": "array", "items": {"type": "string"}},
        "doc_md": nullable("string"),
        "ui_color": {"type": "string"},
        "task_group": nullable("string"),
        "downstream_task_ids": {"type": "array", "items": {"type": "string"}},
        "upstream_task_ids": {"type": "array", "items": {"type": "string"}},
    },
}
COMPONENTS["TaskCollection"] = page_of("tasks", "Task")


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


@registry.route(
    "/dags/{dag_id}/details",
    "GET",
    summary="Get a DAG with what its file defines: schedule, params, dates, docs",
    tag="DAG",
    response=ref("DAGDetail"),
)
def get_dag_details(dag_id: str) -> dict[str, Any]:
    factory = services().session_factory
    row = dag_service.get_dag_row(factory, dag_id)
    dag = dag_service.get_dag(factory, dag_id)
    return {
        **dag_json(row),
        "display_name": dag.display_name,
        "timetable_description": dag.timetable_description,
        "timezone": dag.timezone,
        "start_date": iso(dag.start_date),
        "end_date": iso(dag.end_date),
        "catchup": dag.catchup,
        "dagrun_timeout": _seconds(dag.dagrun_timeout),
        "doc_md": dag.doc_md,
        "is_paused_upon_creation": dag.is_paused_upon_creation,
        "params": {
            name: {
                "default": p.get("default"),
                "has_default": bool(p.get("has_default")),
                "description": p.get("description"),
                "schema": dict(p.get("schema") or {}),
            }
            for name, p in dag.params.items()
        },
        "task_count": len(dag.task_dict),
        "task_ids": dag.topological_order(),
    }


def task_json(task: SerializedTask) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "operator": task.operator,
        "class_ref": {"class_name": task.operator_class, "module_path": task.operator_module},
        "owner": task.owner,
        "retries": task.retries,
        "retry_delay": task.retry_delay.total_seconds(),
        "retry_exponential_backoff": task.retry_exponential_backoff,
        "max_retry_delay": _seconds(task.max_retry_delay),
        "execution_timeout": _seconds(task.execution_timeout),
        "pool": task.pool,
        "pool_slots": task.pool_slots,
        "queue": task.queue,
        "priority_weight": task.priority_weight,
        "weight_rule": task.weight_rule,
        "trigger_rule": task.trigger_rule.value,
        "depends_on_past": task.depends_on_past,
        "wait_for_downstream": task.wait_for_downstream,
        "template_fields": list(task.template_fields),
        "doc_md": task.doc_md,
        "ui_color": task.ui_color,
        "task_group": task.task_group,
        "downstream_task_ids": sorted(task.downstream_task_ids),
        "upstream_task_ids": sorted(task.upstream_task_ids),
    }


@registry.route(
    "/dags/{dag_id}/tasks",
    "GET",
    summary="List a DAG's tasks, in dependency order",
    tag="DAG",
    response=ref("TaskCollection"),
)
def list_tasks(dag_id: str) -> dict[str, Any]:
    dag = dag_service.get_dag(services().session_factory, dag_id)
    tasks = [task_json(dag.task_dict[t]) for t in dag.topological_order()]
    return {"tasks": tasks, "total_entries": len(tasks)}


@registry.route(
    "/dags/{dag_id}/tasks/{task_id}",
    "GET",
    summary="Get one task of a DAG",
    tag="DAG",
    response=ref("Task"),
)
def get_task(dag_id: str, task_id: str) -> dict[str, Any]:
    dag = dag_service.get_dag(services().session_factory, dag_id)
    task = dag.task_dict.get(task_id)
    if task is None:
        raise TaskNotFound(f"DAG {dag_id!r} has no task {task_id!r}")
    return task_json(task)
