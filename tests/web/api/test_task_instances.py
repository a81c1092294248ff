"""Task instances: list, get, mark, clear, tries; their logs (chunked, for a live tail)
and XComs."""

from __future__ import annotations

from slipstream.roles import Role
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import audit
from slipstream.store.db import transaction
from slipstream.task_logs import try_log_path

from .conftest import Api

_S = TaskInstanceState
TI = "/dags/demo/dagRuns/r1/taskInstances"


def test_list_and_get_task_instances(api_any_db: Api) -> None:
    api = api_any_db
    api.trigger("r1")
    api.run_try("r1", "extract", _S.SUCCESS)
    api.run_try("r1", "transform", _S.FAILED)
    listed = api.get(TI)
    assert [t["task_id"] for t in listed["task_instances"]] == [
        "extract",
        "transform",
        "load",
        "transform_report",
    ]
    assert listed["total_entries"] == 4
    failed = api.get(TI + "?state=failed,success")
    assert {t["task_id"] for t in failed["task_instances"]} == {"extract", "transform"}
    one = api.get(TI + "/transform")
    assert one["state"] == "failed" and one["try_number"] == 1 and one["pool"] == "etl"
    assert one["hostname"] == "test-host" and one["end_date"] is not None
    assert "did you mean 'extract'" in api.error("GET", TI + "/extrct", 404)
    assert "no run 'r2'" in api.error("GET", "/dags/demo/dagRuns/r2/taskInstances", 404)
    assert "one of" in api.error("GET", TI + "?state=bogus", 400)


def test_mark_with_downstream_reopens_a_finished_run(api_any_db: Api) -> None:
    api = api_any_db
    api.trigger("r1")
    api.run_try("r1", "extract", _S.FAILED)
    api.patch("/dags/demo/dagRuns/r1", {"state": "failed"})
    assert api.get("/dags/demo/dagRuns/r1")["state"] == "failed"

    changed = api.patch(
        TI + "/extract", {"new_state": "success", "include_downstream": True}, role=Role.USER
    )
    assert [t["task_id"] for t in changed["task_instances"]] == [
        "extract",
        "transform",
        "load",
        "transform_report",
    ]
    assert set(api.states("r1").values()) == {"success"}
    # the run goes back to running, for the scheduler to decide its end again
    assert api.get("/dags/demo/dagRuns/r1")["state"] == "running"
    with transaction(api.web.factory, readonly=True) as session:
        (row,) = audit.list_entries(session, event="task.mark")
    assert row.owner == "user" and row.task_id == "extract"

    # marking again changes nothing, and says so
    again = api.patch(TI + "/extract", {"new_state": "success"})
    assert again == {"task_instances": [], "total_entries": 0}
    upstream = api.patch(TI + "/transform", {"new_state": "failed", "include_upstream": True})
    assert [t["task_id"] for t in upstream["task_instances"]] == ["extract", "transform"]
    assert api.get(TI + "/transform")["error"] == "marked failed by admin"

    assert "one of" in api.error("PATCH", TI + "/load", 400, json={"new_state": "running"})
    api.error("PATCH", TI + "/load", 400, json={"new_state": "success", "extra": 1})
    api.error("PATCH", TI + "/load", 400, json={"new_state": "success", "include_upstream": "y"})
    assert "no task 'nope'" in api.error("PATCH", TI + "/nope", 404, json={"new_state": "failed"})


def test_marking_success_resumes_what_the_failure_stopped(api: Api) -> None:
    api.trigger("r1")
    api.run_try("r1", "extract", _S.SUCCESS)
    api.run_try("r1", "transform", _S.FAILED)
    api.decide("r1", "load", _S.UPSTREAM_FAILED)
    api.decide("r1", "transform_report", _S.UPSTREAM_FAILED)
    api.set_run_state("r1", DagRunState.FAILED)

    marked = api.patch(TI + "/transform", {"new_state": "success"})
    assert [t["task_id"] for t in marked["task_instances"]] == ["transform"]
    # the tasks the failure stopped are cleared, and the run goes on
    assert api.states("r1") == {
        "extract": "success",
        "transform": "success",
        "load": "none",
        "transform_report": "none",
    }
    assert api.get("/dags/demo/dagRuns/r1")["state"] == "running"
    (entry,) = api.get("/eventLogs?event=task.mark")["event_logs"]
    assert '"cleared_downstream": {"load": "upstream_failed"' in entry["extra"]


def test_clear_task_instances_by_exact_ids(api_any_db: Api) -> None:
    api = api_any_db
    api.trigger("r1", logical_date="2024-01-01T00:00:00+00:00")
    api.trigger("r2", logical_date="2024-02-01T00:00:00+00:00")
    for run in ("r1", "r2"):
        for task in ("extract", "transform", "load", "transform_report"):
            api.run_try(run, task, _S.SUCCESS)
        api.set_run_state(run, DagRunState.SUCCESS)

    # exactly the ids named: "transform" does not take "transform_report" along
    only = api.post(
        "/dags/demo/clearTaskInstances", {"dag_run_id": "r2", "task_ids": ["transform"]}
    )
    assert [t["task_id"] for t in only["task_instances"]] == ["transform"]
    body = {"dag_run_id": "r2", "task_ids": ["transform"], "include_downstream": True}
    preview = api.post("/dags/demo/clearTaskInstances", body)
    assert preview["dry_run"] is True
    assert sorted(t["task_id"] for t in preview["task_instances"]) == [
        "load",
        "transform",
        "transform_report",
    ]
    done = api.post("/dags/demo/clearTaskInstances", {**body, "dry_run": False})
    assert done["requeued_runs"] == ["r2"]
    assert api.states("r2") == {
        "extract": "success",
        "transform": "none",
        "load": "none",
        "transform_report": "none",
    }
    assert set(api.states("r1").values()) == {"success"}

    by_date = api.post(
        "/dags/demo/clearTaskInstances",
        {"task_ids": ["extract"], "end_date": "2024-01-15T00:00:00", "dry_run": False},
    )
    assert [(t["dag_run_id"], t["task_id"]) for t in by_date["task_instances"]] == [
        ("r1", "extract")
    ]
    detail = api.error(
        "POST", "/dags/demo/clearTaskInstances", 404, json={"task_ids": ["extract", "ghost"]}
    )
    assert "'ghost'" in detail
    api.error("POST", "/dags/demo/clearTaskInstances", 400, json={"task_ids": []})
    api.error("POST", "/dags/demo/clearTaskInstances", 404, json={"dag_run_id": "nope"})


def test_tries_list_finished_tries_and_the_current_one(api: Api) -> None:
    api.trigger("r1")
    api.run_try("r1", "extract", _S.UP_FOR_RETRY)
    api.run_try("r1", "extract", _S.UP_FOR_RETRY)
    api.run_try("r1", "extract", _S.RUNNING)
    tries = api.get(TI + "/extract/tries")
    assert [(t["try_number"], t["state"]) for t in tries["task_instances"]] == [
        (1, "up_for_retry"),
        (2, "up_for_retry"),
        (3, "running"),
    ]
    assert api.get(TI + "/load/tries") == {"task_instances": [], "total_entries": 0}


def test_logs_are_read_in_chunks_from_an_offset(api: Api) -> None:
    api.trigger("r1")
    text = "première ligne\n" + "x" * 50 + "\n"
    api.run_try("r1", "extract", _S.SUCCESS, log=text)
    whole = api.get(TI + "/extract/logs/1")
    assert whole["content"] == text and whole["live"] is False and whole["more"] is False
    assert whole["next_offset"] == len(text.encode())
    tail = api.get(TI + f"/extract/logs/1?offset={whole['next_offset']}")
    assert tail["content"] == "" and tail["next_offset"] == whole["next_offset"]
    middle = api.get(TI + "/extract/logs/1?offset=3")  # inside the "è": replaced, not a 500
    assert middle["content"].endswith("x\n")

    assert "no try 2" in api.error("GET", TI + "/extract/logs/2", 404)
    assert "no try yet" in api.error("GET", TI + "/load/logs/1", 404)
    api.error("GET", TI + "/extract/logs/0", 400)
    api.error("GET", TI + "/extract/logs/one", 400)
    api.error("GET", TI + "/extract/logs/1?offset=-1", 400)


def test_a_live_log_is_tailed_without_splitting_characters(api: Api) -> None:
    api.trigger("r1")
    api.run_try("r1", "extract", _S.RUNNING)
    path = try_log_path(api.web.config.log_folder, "demo", "r1", "extract", 1)
    first = api.get(TI + "/extract/logs/1")
    assert first == {"content": "", "next_offset": 0, "live": True, "more": False, "try_number": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "start ✓\n".encode()
    with path.open("wb") as log:
        log.write(data[:-3])  # the task is half-way through writing "✓\n"
        log.flush()
        seen = api.get(TI + "/extract/logs/1")
        assert seen["content"] == "start " and seen["live"] is True
        log.write(data[-3:])
        log.flush()
        rest = api.get(TI + f"/extract/logs/1?offset={seen['next_offset']}")
    assert rest["content"] == "✓\n" and rest["next_offset"] == len(data)
    api.run_try("r1", "load", _S.SUCCESS)  # unrelated: the try of extract is still running
    assert api.get(TI + "/extract/logs/1?offset=0")["live"] is True


def test_a_long_log_comes_in_capped_chunks(api: Api) -> None:
    from slipstream.api.task_data import LOG_CHUNK_BYTES

    api.trigger("r1")
    text = ("é" * 999 + "\n") * 600  # about 1.2 MB, two-byte characters
    api.run_try("r1", "extract", _S.SUCCESS, log=text)
    first = api.get(TI + "/extract/logs/1")
    assert first["more"] is True and first["next_offset"] <= LOG_CHUNK_BYTES
    second = api.get(TI + f"/extract/logs/1?offset={first['next_offset']}")
    assert second["more"] is False
    assert first["content"] + second["content"] == text


def test_xcoms_of_a_task_instance(api_any_db: Api) -> None:
    api = api_any_db
    api.trigger("r1")
    api.run_try(
        "r1", "extract", _S.SUCCESS, xcoms={"return_value": '{"rows": [1, 2]}', "count": "2"}
    )
    listed = api.get(TI + "/extract/xcomEntries")
    assert [(x["key"], x["value"]) for x in listed["xcom_entries"]] == [
        ("count", 2),
        ("return_value", {"rows": [1, 2]}),
    ]
    assert api.get(TI + "/extract/xcomEntries?limit=1&offset=1")["total_entries"] == 2
    one = api.get(TI + "/extract/xcomEntries/return_value", role=Role.VIEWER)
    assert one["value"] == {"rows": [1, 2]} and one["task_id"] == "extract"
    assert "no XCom 'nope'" in api.error("GET", TI + "/extract/xcomEntries/nope", 404)
    assert api.get(TI + "/load/xcomEntries")["total_entries"] == 0
