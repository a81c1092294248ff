"""What happened: the audit log (every user action, newest first) and the DAG files that
failed to import."""

from __future__ import annotations

from typing import Any

from slipstream.api.blueprint import registry
from slipstream.api.common import LIMIT, OFFSET, iso
from slipstream.api.registry import Query
from slipstream.api.schemas import COMPONENTS, nullable, page_of, ref
from slipstream.security.context import services
from slipstream.service import audit_log
from slipstream.service import dags as dag_service

COMPONENTS["EventLog"] = {
    "type": "object",
    "required": ["event_log_id", "when", "event", "owner", "dag_id", "run_id", "task_id"],
    "properties": {
        "event_log_id": {"type": "integer"},
        "when": {"type": "string", "format": "date-time"},
        "event": {"type": "string", "description": "what was done, e.g. dag.trigger"},
        "owner": nullable("string", description="who did it"),
        "dag_id": nullable("string"),
        "run_id": nullable("string"),
        "task_id": nullable("string"),
        "extra": nullable("string", description="details, as JSON text"),
    },
}
COMPONENTS["EventLogCollection"] = page_of("event_logs", "EventLog")
COMPONENTS["ImportError"] = {
    "type": "object",
    "required": ["import_error_id", "filename", "message", "timestamp"],
    "properties": {
        "import_error_id": {"type": "integer"},
        "filename": {"type": "string"},
        "message": {"type": "string"},
        "stack_trace": nullable("string"),
        "timestamp": {"type": "string", "format": "date-time"},
    },
}
COMPONENTS["ImportErrorCollection"] = page_of("import_errors", "ImportError")


@registry.route(
    "/eventLogs",
    "GET",
    summary="The audit log: who did what, newest first",
    tag="EventLog",
    query=(
        LIMIT,
        OFFSET,
        Query("dag_id", {"type": "string", "maxLength": 250}, "only entries about this DAG"),
        Query("event", {"type": "string", "maxLength": 100}, "only this event, e.g. dag.trigger"),
        Query("owner", {"type": "string", "maxLength": 500}, "only what this user did"),
    ),
    response=ref("EventLogCollection"),
)
def list_event_logs(query: dict[str, Any]) -> dict[str, Any]:
    page = audit_log.list_entries(
        services().session_factory,
        dag_id=query["dag_id"],
        event=query["event"],
        owner=query["owner"],
        limit=query["limit"],
        offset=query["offset"],
    )
    return {
        "event_logs": [
            {
                "event_log_id": row.id,
                "when": iso(row.dttm),
                "event": row.event,
                "owner": row.owner,
                "dag_id": row.dag_id,
                "run_id": row.run_id,
                "task_id": row.task_id,
                "extra": row.extra,
            }
            for row in page.items
        ],
        "total_entries": page.total,
    }


@registry.route(
    "/importErrors",
    "GET",
    summary="DAG files that failed to import, and why",
    tag="ImportError",
    query=(LIMIT, OFFSET),
    response=ref("ImportErrorCollection"),
)
def list_import_errors(query: dict[str, Any]) -> dict[str, Any]:
    rows = dag_service.list_import_errors(services().session_factory)
    shown = rows[query["offset"] : query["offset"] + query["limit"]]
    return {
        "import_errors": [
            {
                "import_error_id": row.id,
                "filename": row.filename,
                "message": row.message,
                "stack_trace": row.stacktrace,
                "timestamp": iso(row.timestamp),
            }
            for row in shown
        ],
        "total_entries": len(rows),
    }
