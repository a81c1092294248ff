"""What a task instance leaves behind: the log of each try (read in chunks, for a live
tail) and its XComs."""

from __future__ import annotations

from typing import Any

from slipstream.api.blueprint import registry
from slipstream.api.common import LIMIT, OFFSET, iso
from slipstream.api.registry import Query
from slipstream.api.schemas import COMPONENTS, page_of, ref
from slipstream.security.context import services
from slipstream.service import inspection
from slipstream.service import xcoms as xcom_service
from slipstream.service.xcoms import XComEntry

#: the most log bytes one answer carries; a longer log is read in several requests
LOG_CHUNK_BYTES = 1_000_000
#: JSON's largest exact integer: far past any log's size
_MAX_OFFSET = 2**53 - 1

COMPONENTS["LogChunk"] = {
    "type": "object",
    "required": ["content", "next_offset", "live", "more", "try_number"],
    "properties": {
        "content": {"type": "string", "description": "the log text from the offset asked for"},
        "next_offset": {
            "type": "integer",
            "minimum": 0,
            "description": "pass as ?offset= to get only what follows this chunk",
        },
        "live": {"type": "boolean", "description": "the try is queued or running: more may come"},
        "more": {
            "type": "boolean",
            "description": "the log already holds more past next_offset: ask again at once",
        },
        "try_number": {"type": "integer", "minimum": 1},
    },
}
COMPONENTS["XComEntry"] = {
    "type": "object",
    "required": ["dag_id", "dag_run_id", "task_id", "map_index", "key", "timestamp", "value"],
    "properties": {
        "dag_id": {"type": "string"},
        "dag_run_id": {"type": "string"},
        "task_id": {"type": "string"},
        "map_index": {"type": "integer"},
        "key": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "value": {"description": "the value the task pushed, as JSON"},
    },
}
COMPONENTS["XComCollection"] = page_of("xcom_entries", "XComEntry")

_TI_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"


@registry.route(
    _TI_PATH + "/logs/{try_number}",
    "GET",
    summary="Read the log of one try, from a byte offset",
    tag="TaskInstance",
    query=(
        Query(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": _MAX_OFFSET, "default": 0},
            "the byte to start at: the previous answer's next_offset",
        ),
    ),
    path_schemas={"try_number": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}},
    response=ref("LogChunk"),
)
def get_log(
    dag_id: str, dag_run_id: str, task_id: str, try_number: int, query: dict[str, Any]
) -> dict[str, Any]:
    """Up to 1 MB of the log at a time. A live tail asks again with each answer's
    ``next_offset`` while ``live`` (or ``more``) is true, and so gets only the new text.
    A try that is queued or running but has written nothing yet answers with no content."""
    svc = services()
    log = inspection.find_try_log(
        svc.session_factory,
        svc.config.log_folder,
        dag_id,
        dag_run_id,
        task_id,
        try_number,
        wait=True,
    )
    chunk = inspection.read_log_chunk(log, query["offset"], LOG_CHUNK_BYTES)
    return {
        "content": chunk.content,
        "next_offset": chunk.next_offset,
        "live": chunk.live,
        "more": chunk.more,
        "try_number": log.try_number,
    }


def _xcom_json(dag_id: str, run_id: str, entry: XComEntry) -> dict[str, Any]:
    return {
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "task_id": entry.task_id,
        "map_index": entry.map_index,
        "key": entry.key,
        "timestamp": iso(entry.timestamp),
        "value": entry.value,
    }


@registry.route(
    _TI_PATH + "/xcomEntries",
    "GET",
    summary="List the XComs a task instance pushed, by key",
    tag="XCom",
    query=(LIMIT, OFFSET),
    response=ref("XComCollection"),
)
def list_xcom_entries(
    dag_id: str, dag_run_id: str, task_id: str, query: dict[str, Any]
) -> dict[str, Any]:
    entries = xcom_service.list_xcoms(services().session_factory, dag_id, dag_run_id, task_id)
    shown = entries[query["offset"] : query["offset"] + query["limit"]]
    return {
        "xcom_entries": [_xcom_json(dag_id, dag_run_id, e) for e in shown],
        "total_entries": len(entries),
    }


@registry.route(
    _TI_PATH + "/xcomEntries/{xcom_key}",
    "GET",
    summary="Get one XCom of a task instance",
    tag="XCom",
    response=ref("XComEntry"),
)
def get_xcom_entry(dag_id: str, dag_run_id: str, task_id: str, xcom_key: str) -> dict[str, Any]:
    entry = xcom_service.get_xcom(services().session_factory, dag_id, dag_run_id, task_id, xcom_key)
    return _xcom_json(dag_id, dag_run_id, entry)
