"""DAG details and tasks, and DAG runs: trigger, list with filters, get, mark, clear."""

from __future__ import annotations

from slipstream.roles import Role
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import audit
from slipstream.store.db import transaction

from .conftest import Api

_S = TaskInstanceState


def _events(api: Api, event: str) -> list[audit.AuditLog]:
    with transaction(api.web.factory, readonly=True) as session:
        return audit.list_entries(session, event=event)


def test_details_and_tasks_come_from_the_serialized_dag(api: Api) -> None:
    details = api.get("/dags/demo/details")
    assert details["dag_id"] == "demo" and details["tags"] == ["api", "demo"]
    assert details["params"]["count"] == {
        "default": 5,
        "has_default": True,
        "description": "how many",
        "schema": {"type": "integer", "minimum": 1},
    }
    assert details["task_count"] == 4 and details["catchup"] is False
    assert details["start_date"].startswith("2024-01-01T00:00:00")
    assert details["doc_md"] == "Demo **DAG** for the API tests."
    assert details["fileloc"].endswith("demo.py") and details["timezone"] == "UTC"
    listed = api.get("/dags/demo/tasks")
    assert listed["total_entries"] == 4
    tasks = {t["task_id"]: t for t in listed["tasks"]}
    assert list(tasks) == ["extract", "transform", "load", "transform_report"]  # by dependency
    assert tasks["extract"]["retries"] == 2 and tasks["extract"]["operator"] == "BashOperator"
    assert tasks["transform"]["pool"] == "etl"
    assert tasks["transform"]["downstream_task_ids"] == ["load", "transform_report"]
    assert tasks["load"]["trigger_rule"] == "all_success"
    assert api.get("/dags/demo/tasks/load")["upstream_task_ids"] == ["transform"]
    assert "no task 'nope'" in api.error("GET", "/dags/demo/tasks/nope", 404)
    assert "did you mean 'demo'" in api.error("GET", "/dags/dmeo/details", 404)


def test_trigger_list_get_on_both_databases(api_any_db: Api) -> None:
    api = api_any_db
    first = api.trigger("r1", conf={"count": 3}, logical_date="2024-03-01T00:00:00+00:00")
    assert first["state"] == "queued" and first["conf"] == {"count": 3}
    assert first["triggered_by"] == "rest_api" and first["run_type"] == "manual"
    api.trigger("r2", logical_date="2024-03-02T00:00:00")  # naive: the DAG's zone, UTC
    auto = api.post("/dags/demo/dagRuns", {})
    assert auto["dag_run_id"].startswith("manual__")
    assert api.get("/dags/demo/dagRuns/r2")["logical_date"] == "2024-03-02T00:00:00+00:00"
    # the audit row names the user who triggered it
    assert {e.owner for e in _events(api, "dag.trigger")} == {"admin"}

    runs = api.get("/dags/demo/dagRuns")
    assert runs["total_entries"] == 3
    assert [r["dag_run_id"] for r in runs["dag_runs"]][1:] == ["r2", "r1"]  # newest first
    api.set_run_state("r1", DagRunState.FAILED)
    failed = api.get("/dags/demo/dagRuns?state=failed")
    assert [r["dag_run_id"] for r in failed["dag_runs"]] == ["r1"]
    both = api.get("/dags/demo/dagRuns?state=failed&state=queued&limit=1&offset=1")
    assert both["total_entries"] == 3 and len(both["dag_runs"]) == 1
    window = api.get(
        "/dags/demo/dagRuns?logical_date_gte=2024-03-01T12:00:00Z"
        "&logical_date_lte=2024-03-02T00:00:00%2B00:00"
    )
    assert [r["dag_run_id"] for r in window["dag_runs"]] == ["r2"]
    assert api.get("/dags/demo/dagRuns?run_type=scheduled")["total_entries"] == 0


def test_trigger_refuses_bad_conf_and_taken_ids(api: Api) -> None:
    api.trigger("r1")
    assert "already has a run 'r1'" in api.error(
        "POST", "/dags/demo/dagRuns", 409, json={"dag_run_id": "r1"}
    )
    detail = api.error("POST", "/dags/demo/dagRuns", 400, json={"conf": {"count": 0}})
    assert "count" in detail
    assert "conf" in api.error("POST", "/dags/demo/dagRuns", 400, json={"conf": [1]})
    assert "logical_date" in api.error(
        "POST", "/dags/demo/dagRuns", 400, json={"logical_date": "yesterday"}
    )
    assert "unexpected" in api.error("POST", "/dags/demo/dagRuns", 400, json={"confs": {}})
    api.error("POST", "/dags/demo/dagRuns", 400, json={"dag_run_id": "a/b"})
    api.error("POST", "/dags/nope/dagRuns", 404, json={})
    assert api.get("/dags/demo/dagRuns")["total_entries"] == 1  # nothing else was created


def test_mark_run_success_failed_and_queued(api_any_db: Api) -> None:
    api = api_any_db
    api.trigger("r1")
    api.set_run_state("r1", DagRunState.RUNNING)
    api.run_try("r1", "extract", _S.SUCCESS)
    api.run_try("r1", "transform", _S.RUNNING)

    failed = api.patch("/dags/demo/dagRuns/r1", {"state": "failed"}, role=Role.USER)
    assert failed["state"] == "failed" and failed["end_date"] is not None
    # what ran keeps its state; the running try fails; what never started is skipped
    assert api.states("r1") == {
        "extract": "success",
        "transform": "failed",
        "load": "skipped",
        "transform_report": "skipped",
    }
    transform = api.get("/dags/demo/dagRuns/r1/taskInstances/transform")
    assert transform["error"] == "marked failed by user"
    # the try taken from its worker is in the history, ending as marked
    tries = api.get("/dags/demo/dagRuns/r1/taskInstances/transform/tries")["task_instances"]
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed")]

    api.trigger("r2")
    success = api.patch("/dags/demo/dagRuns/r2", {"state": "success"})
    assert success["state"] == "success"
    assert set(api.states("r2").values()) == {"success"}

    queued = api.patch("/dags/demo/dagRuns/r1", {"state": "queued"})
    assert queued["state"] == "queued" and queued["start_date"] is None
    assert api.states("r1")["transform"] == "failed"  # task instances as they were
    marks = _events(api, "dag_run.mark")
    assert [(e.owner, e.run_id) for e in marks] == [
        ("admin", "r1"),
        ("admin", "r2"),
        ("user", "r1"),
    ]

    assert "running" in api.error("PATCH", "/dags/demo/dagRuns/r1", 400, json={"state": "running"})
    assert "no run 'r9'" in api.error(
        "PATCH", "/dags/demo/dagRuns/r9", 404, json={"state": "failed"}
    )


def test_clear_run_previews_by_default_then_clears(api_any_db: Api) -> None:
    api = api_any_db
    api.trigger("r1")
    api.run_try("r1", "extract", _S.SUCCESS)
    api.run_try("r1", "transform", _S.FAILED)
    api.patch("/dags/demo/dagRuns/r1", {"state": "failed"})

    preview = api.post("/dags/demo/dagRuns/r1/clear", {"only_failed": True})
    assert preview["dry_run"] is True
    assert [t["task_id"] for t in preview["task_instances"]] == ["transform"]
    assert api.states("r1")["transform"] == "failed"  # nothing written

    done = api.post("/dags/demo/dagRuns/r1/clear", {"only_failed": True, "dry_run": False})
    assert done["dry_run"] is False and done["requeued_runs"] == ["r1"]
    assert done["task_instances"][0]["old_state"] == "failed"
    assert api.states("r1")["transform"] == "none"
    assert api.get("/dags/demo/dagRuns/r1")["state"] == "queued"
    assert _events(api, "task.clear")[0].owner == "admin"
    api.error("POST", "/dags/demo/dagRuns/nope/clear", 404, json={})
