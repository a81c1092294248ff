"""DAG runs: list (filters, newest first), trigger, get, mark (success, failed, queued)
and clear."""

from __future__ import annotations

from typing import Any

from slipstream.api.blueprint import registry
from slipstream.api.common import LIMIT, OFFSET, body_datetime, iso
from slipstream.api.registry import Query
from slipstream.api.schemas import COMPONENTS, DATETIME, nullable, page_of, ref
from slipstream.errors import AlreadyExistsError
from slipstream.roles import Permission
from slipstream.security.auth import require
from slipstream.security.context import services
from slipstream.service import clearing
from slipstream.service import marking as mark_service
from slipstream.service import runs as run_service
from slipstream.service.clearing import ClearResult
from slipstream.states import DagRunState, DagRunType
from slipstream.store.models import DagRun

RUN_STATES = [s.value for s in DagRunState]
#: where a run created through this API says it came from (Airflow's DagRunTriggeredByType)
TRIGGERED_BY = "rest_api"

COMPONENTS["DAGRun"] = {
    "type": "object",
    "required": ["dag_id", "dag_run_id", "run_type", "state", "conf"],
    "properties": {
        "dag_id": {"type": "string"},
        "dag_run_id": {"type": "string"},
        "run_type": {"type": "string", "enum": [t.value for t in DagRunType]},
        "state": {"type": "string", "enum": RUN_STATES},
        "logical_date": DATETIME,
        "data_interval_start": DATETIME,
        "data_interval_end": DATETIME,
        "run_after": {"type": "string", "format": "date-time"},
        "queued_at": DATETIME,
        "start_date": DATETIME,
        "end_date": DATETIME,
        "last_updated": DATETIME,
        "conf": {"type": "object"},
        "triggered_by": nullable("string"),
        "external_trigger": {"type": "boolean"},
    },
}
#: the body properties every clear endpoint takes
CLEAR_OPTIONS = {
    "only_failed": {"type": "boolean", "default": False},
    "dry_run": {
        "type": "boolean",
        "default": True,
        "description": "only say what would be cleared (the default, as in Airflow)",
    },
}
COMPONENTS["DAGRunCollection"] = page_of("dag_runs", "DAGRun")
COMPONENTS["ClearedTaskInstance"] = {
    "type": "object",
    "required": ["dag_id", "dag_run_id", "task_id", "old_state", "try_number"],
    "properties": {
        "dag_id": {"type": "string"},
        "dag_run_id": {"type": "string"},
        "task_id": {"type": "string"},
        "old_state": {"type": "string", "description": "the state it had before the clear"},
        "try_number": {"type": "integer"},
    },
}
COMPONENTS["ClearResult"] = {
    "type": "object",
    "required": ["task_instances", "total_entries", "dry_run", "requeued_runs"],
    "properties": {
        "task_instances": {"type": "array", "items": ref("ClearedTaskInstance")},
        "total_entries": {"type": "integer", "minimum": 0},
        "dry_run": {"type": "boolean", "description": "true: nothing was written"},
        "requeued_runs": {
            "type": "array",
            "items": {"type": "string"},
            "description": "finished runs sent back to queued to run the cleared tasks",
        },
    },
}

#: one URL segment, within the column's length
RUN_ID = {"type": "string", "minLength": 1, "maxLength": 250, "pattern": "^[^/]+$"}


def run_json(run: DagRun) -> dict[str, Any]:
    return {
        "dag_id": run.dag_id,
        "dag_run_id": run.run_id,
        "run_type": run.run_type,
        "state": run.state,
        "logical_date": iso(run.logical_date),
        "data_interval_start": iso(run.data_interval_start),
        "data_interval_end": iso(run.data_interval_end),
        "run_after": iso(run.run_after),
        "queued_at": iso(run.queued_at),
        "start_date": iso(run.start_date),
        "end_date": iso(run.end_date),
        "last_updated": iso(run.updated_at),
        "conf": dict(run.conf or {}),
        "triggered_by": run.triggered_by,
        "external_trigger": run.run_type == DagRunType.MANUAL.value,
    }


def clear_json(result: ClearResult) -> dict[str, Any]:
    return {
        "task_instances": [
            {
                "dag_id": result.dag_id,
                "dag_run_id": t.run_id,
                "task_id": t.task_id,
                "old_state": t.old_state,
                "try_number": t.try_number,
            }
            for t in result.tasks
        ],
        "total_entries": len(result.tasks),
        "dry_run": result.dry_run,
        "requeued_runs": list(result.requeued_runs),
    }


@registry.route(
    "/dags/{dag_id}/dagRuns",
    "GET",
    summary="List a DAG's runs, newest logical date first",
    tag="DAGRun",
    query=(
        LIMIT,
        OFFSET,
        Query("state", {"type": "array", "items": {"type": "string", "enum": RUN_STATES}}),
        Query("run_type", {"type": "string", "enum": [t.value for t in DagRunType]}),
        Query(
            "logical_date_gte",
            {"type": "string", "format": "date-time"},
            "runs with a logical date at or after this (UTC when no zone is given)",
        ),
        Query(
            "logical_date_lte",
            {"type": "string", "format": "date-time"},
            "runs with a logical date at or before this (UTC when no zone is given)",
        ),
    ),
    response=ref("DAGRunCollection"),
)
def list_dag_runs(dag_id: str, query: dict[str, Any]) -> dict[str, Any]:
    page = run_service.find_runs(
        services().session_factory,
        dag_id,
        states=query["state"] or None,
        run_type=query["run_type"],
        logical_date_from=query["logical_date_gte"],
        logical_date_to=query["logical_date_lte"],
        limit=query["limit"],
        offset=query["offset"],
    )
    return {"dag_runs": [run_json(r) for r in page.items], "total_entries": page.total}


@registry.route(
    "/dags/{dag_id}/dagRuns",
    "POST",
    summary="Trigger a run",
    tag="DAGRun",
    permission=Permission.OPERATE,
    body={
        "type": "object",
        "properties": {
            "dag_run_id": RUN_ID,
            "logical_date": nullable(
                "string",
                format="date-time",
                description="default: now; without a time zone, in the DAG's time zone",
            ),
            "conf": {"type": "object", "description": "the run's params, checked by the DAG"},
            "note": nullable("string", maxLength=1000, description="accepted and ignored"),
        },
        "additionalProperties": False,
    },
    response=ref("DAGRun"),
    errors=(409,),
)
def trigger_dag_run(dag_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create a queued manual run. 400 when ``conf`` does not satisfy the DAG's params;
    409 when the DAG already has a run with that id. A paused DAG's run waits, queued,
    until the DAG is unpaused."""
    who = require(Permission.OPERATE)
    svc = services()
    logical_date = body_datetime(body.get("logical_date"), "logical_date")
    if logical_date is not None:
        logical_date = run_service.dag_logical_date(svc.session_factory, dag_id, logical_date)
    try:
        run = run_service.trigger_dag(
            svc.session_factory,
            dag_id,
            now=svc.now(),
            conf=body.get("conf"),
            logical_date=logical_date,
            run_id=body.get("dag_run_id"),
            actor=who.username,
            database_url=svc.database_url,
            triggered_by=TRIGGERED_BY,
        )
    except AlreadyExistsError:
        raise AlreadyExistsError(
            f"DAG {dag_id!r} already has a run {body.get('dag_run_id')!r}"
        ) from None
    return run_json(run_service.get_run(svc.session_factory, dag_id, run.run_id))


@registry.route(
    "/dags/{dag_id}/dagRuns/{dag_run_id}",
    "GET",
    summary="Get a run",
    tag="DAGRun",
    response=ref("DAGRun"),
)
def get_dag_run(dag_id: str, dag_run_id: str) -> dict[str, Any]:
    return run_json(run_service.get_run(services().session_factory, dag_id, dag_run_id))


@registry.route(
    "/dags/{dag_id}/dagRuns/{dag_run_id}",
    "PATCH",
    summary="Mark a run success or failed, or queue it up again",
    tag="DAGRun",
    permission=Permission.OPERATE,
    body={
        "type": "object",
        "required": ["state"],
        "properties": {"state": {"type": "string", "enum": list(mark_service.RUN_MARK_STATES)}},
        "additionalProperties": False,
    },
    response=ref("DAGRun"),
)
def mark_dag_run(dag_id: str, dag_run_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """success: every unfinished task instance becomes success. failed: queued and running
    task instances fail (their workers stop them), those not started are skipped. queued:
    the run goes back to the scheduler, its task instances as they are."""
    who = require(Permission.OPERATE)
    svc = services()
    run = mark_service.mark_run(
        svc.session_factory,
        dag_id,
        dag_run_id,
        body["state"],
        now=svc.now(),
        actor=who.username,
        database_url=svc.database_url,
    )
    return run_json(run)


@registry.route(
    "/dags/{dag_id}/dagRuns/{dag_run_id}/clear",
    "POST",
    summary="Clear a run's task instances so they run again",
    tag="DAGRun",
    permission=Permission.OPERATE,
    body={
        "type": "object",
        "properties": {
            **CLEAR_OPTIONS,
        },
        "additionalProperties": False,
    },
    response=ref("ClearResult"),
)
def clear_dag_run(dag_id: str, dag_run_id: str, body: dict[str, Any]) -> dict[str, Any]:
    who = require(Permission.OPERATE)
    svc = services()
    result = clearing.clear_tasks(
        svc.session_factory,
        dag_id,
        now=svc.now(),
        run_id=dag_run_id,
        only_failed=body.get("only_failed", False),
        dry_run=body.get("dry_run", True),
        actor=who.username,
        database_url=svc.database_url,
    )
    return clear_json(result)
