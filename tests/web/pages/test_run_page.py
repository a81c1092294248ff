"""The run page: state, conf, Gantt chart and task instances; clearing the run; marking it
after a confirmation page; its live JSON."""

from __future__ import annotations

import re

from slipstream.roles import Role
from slipstream.service import inspection
from slipstream.service import runs as run_service
from slipstream.states import DagRunState, TaskInstanceState

from ..conftest import WebEnv
from .conftest import DEMO_TASKS, Pages, flashes, post, text

S = TaskInstanceState


def _states(web: WebEnv, run_id: str) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in inspection.task_instances(web.factory, "demo", run_id)}


def test_the_run_page_shows_state_conf_gantt_and_tasks(pages: Pages) -> None:
    pages.trigger(run_id="r1", conf={"name": "<b>bold</b>"})
    pages.set_run_state("r1", DagRunState.RUNNING)
    pages.set_task("r1", "start", S.SUCCESS)
    pages.set_task("r1", "stage.extract", S.RUNNING)
    page = text(pages.client(Role.USER).get("/dags/demo/runs/r1"))
    assert '<span id="run-state" data-state="running"' in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="gantt"' in page
    bars = re.findall(
        r'class="gantt-bar" data-task-id="([\w.]+)" data-try="1" data-state="(\w+)"', page
    )
    assert bars == [("start", "success"), ("stage.extract", "running")]
    widths = [
        float(w) for w in re.findall(r'class="bar" x="[\d.]+" y="\d+" width="([\d.]+)"', page)
    ]
    assert len(widths) == 2 and all(w >= 2 for w in widths)
    assert re.findall(r'<tr data-task-id="([\w.]+)">', page) == DEMO_TASKS
    assert 'href="/dags/demo/runs/r1/tasks/stage.extract"' in page
    for control in ('id="clear-run"', 'id="mark-run-success"', 'id="mark-run-failed"'):
        assert control in page
    assert 'data-live="true"' in page
    viewer = text(pages.client(Role.VIEWER).get("/dags/demo/runs/r1"))
    assert "clear-run" not in viewer and "mark-run-success" not in viewer


def test_the_run_json_for_the_live_refresh(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    pages.set_task("r1", "start", S.RUNNING)
    data = pages.client(Role.VIEWER).get("/ui/dags/demo/runs/r1").json
    assert data is not None
    assert data["state"] == "queued" and data["live"] is True
    assert [t["task_id"] for t in data["task_instances"]] == DEMO_TASKS
    assert data["task_instances"][0]["state"] == "running"
    assert data["gantt"].startswith('<svg xmlns="http://www.w3.org/2000/svg" id="gantt"')


def test_clearing_the_run_or_only_its_failed_tasks(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    pages.set_task("r1", "start", S.SUCCESS)
    pages.set_task("r1", "stage.extract", S.FAILED)
    pages.set_run_state("r1", DagRunState.FAILED)
    client = pages.client(Role.USER)
    response = post(client, "/dags/demo/runs/r1/clear", {"only_failed": "true"})
    assert response.status_code == 302
    assert _states(pages.web, "r1") == {
        "start": "success", "stage.extract": "none", "stage.load": "none", "end": "none"
    }  # fmt: skip
    assert run_service.get_run(pages.web.factory, "demo", "r1").state == "queued"
    assert flashes(client, "/dags/demo/runs/r1")[0].startswith("Cleared 1 task instance(s)")
    post(client, "/dags/demo/runs/r1/clear")
    assert set(_states(pages.web, "r1").values()) == {"none"}
    assert [(e.owner, e.run_id) for e in pages.audit("task.clear")] == [("user", "r1")] * 2
    post(client, "/dags/demo/runs/r1/clear")
    assert flashes(client, "/dags/demo/runs/r1") == [
        "Nothing to clear: run r1 has no task instances that ran."
    ]


def test_marking_a_run_confirms_what_changes_first(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    pages.set_run_state("r1", DagRunState.RUNNING)
    pages.set_task("r1", "start", S.SUCCESS)
    pages.set_task("r1", "stage.extract", S.RUNNING)
    client = pages.client(Role.USER)
    confirm = text(client.get("/dags/demo/runs/r1/mark?state=failed"))
    changes = re.findall(
        r'<tr data-task-id="([\w.]+)"><td>[\w.]+</td><td>(.*?)</td><td>(.*?)</td>', confirm
    )
    assert [(t, re.sub("<[^>]+>", "", a), re.sub("<[^>]+>", "", b)) for t, a, b in changes] == [
        ("stage.extract", "running", "failed"),
        ("stage.load", "none", "skipped"),
        ("end", "none", "skipped"),
    ]
    assert _states(pages.web, "r1")["stage.extract"] == "running"  # nothing changed yet
    response = post(client, "/dags/demo/runs/r1/mark", {"state": "failed"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/dags/demo/runs/r1"
    assert run_service.get_run(pages.web.factory, "demo", "r1").state == "failed"
    assert _states(pages.web, "r1") == {
        "start": "success", "stage.extract": "failed", "stage.load": "skipped", "end": "skipped"
    }  # fmt: skip
    [entry] = pages.audit("dag_run.mark")
    assert (entry.owner, entry.run_id) == ("user", "r1")
    post(client, "/dags/demo/runs/r1/mark", {"state": "success"})
    assert run_service.get_run(pages.web.factory, "demo", "r1").state == "success"


def test_marking_refuses_bad_states_and_viewers(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    user = pages.client(Role.USER)
    bad = user.get("/dags/demo/runs/r1/mark?state=purple")
    assert bad.status_code == 400 and "can be marked success or failed" in text(bad)
    post(user, "/dags/demo/runs/r1/mark", {"state": "purple"})
    assert "can be marked success or failed" in flashes(user, "/dags/demo/runs/r1")[0]
    viewer = pages.client(Role.VIEWER)
    assert viewer.get("/dags/demo/runs/r1/mark?state=success").status_code == 403
    assert post(viewer, "/dags/demo/runs/r1/mark", {"state": "success"}).status_code == 403
    assert post(viewer, "/dags/demo/runs/r1/clear").status_code == 403
    assert user.post("/dags/demo/runs/r1/mark", data={"state": "success"}).status_code == 400
    assert run_service.get_run(pages.web.factory, "demo", "r1").state == "queued"
    assert pages.audit("dag_run.mark") == []


def test_trigger_clear_and_mark_on_every_database(pages_any_db: Pages) -> None:
    pages = pages_any_db
    web_any_db = pages.web
    client = pages.client(Role.OP)
    post(client, "/dags/demo/trigger", {"run_id": "pg", "param:count": "3"})
    [run] = inspection.list_runs(web_any_db.factory, "demo")
    assert (run.run_id, run.conf["count"]) == ("pg", 3)
    pages.set_task("pg", "start", S.FAILED)
    post(client, "/dags/demo/runs/pg/tasks/start/clear", {"downstream": "true"})
    assert _states(web_any_db, "pg")["start"] == "none"
    post(client, "/dags/demo/runs/pg/tasks/start/mark", {"state": "success"})
    assert _states(web_any_db, "pg")["start"] == "success"
    page = text(client.get("/dags/demo/runs/pg"))
    assert 'data-task-id="start" data-try="1" data-state="failed"' in page  # the failed try
    assert [e.owner for e in pages.audit("task.mark")] == ["op"]
