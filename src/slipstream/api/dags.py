"""DAGs: list (search, tags, paused; paginated), get, pause and unpause."""

from __future__ import annotations

from typing import Any

from slipstream.api.blueprint import registry
from slipstream.api.registry import Query
from slipstream.api.schemas import COMPONENTS, DATETIME, nullable, page_of, ref
from slipstream.roles import Permission
from slipstream.security.auth import require
from slipstream.security.context import services
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

LIMIT = Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})
OFFSET = Query("offset", {"type": "integer", "minimum": 0, "default": 0})


def iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


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
