"""The task instance page: state and details, why it waits, template fields, the log of
each try, XComs and tries; clearing and marking it, by role."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from slipstream.roles import Role
from slipstream.service import inspection
from slipstream.states import TaskInstanceState
from slipstream.store import xcoms as xcom_store
from slipstream.store.db import transaction

from .conftest import Pages, flashes, post, text

S = TaskInstanceState
PAGE = "/dags/demo/runs/r1/tasks/stage.extract"


def _state(pages: Pages, task_id: str) -> str:
    ti = inspection.get_task_instance(pages.web.factory, "demo", "r1", task_id)
    return ti.state


def test_a_finished_task_shows_its_details_log_xcoms_and_tries(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    pages.set_task("r1", "stage.extract", S.SUCCESS)
    pages.write_log("r1", "stage.extract", "line one\n<script>alert('x')</script>\n")
    with transaction(pages.web.factory) as session:
        xcom_store.put_xcoms(
            session,
            dag_id="demo",
            run_id="r1",
            task_id="stage.extract",
            values={"return_value": '{"rows": 3}'},
            now=datetime.now(UTC),
        )
    page = text(pages.client(Role.USER).get(PAGE))
    assert '<span id="ti-state" data-state="success"' in page
    assert "host-1" in page and "BashOperator" in page and "default_pool" in page
    log = re.search(r'<pre id="log" data-try="1"[^>]*data-live="false">(.*?)</pre>', page, re.S)
    assert log and "line one" in log.group(1)
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)" in page
    assert 'data-key="return_value"' in page and "&#34;rows&#34;: 3" in page
    assert re.findall(r'<tr data-try="(\d)">', page) == ["1"]
    # the template beside "not rendered yet" (no worker rendered this try)
    assert 'data-field="bash_command"' in page and "echo {{ params.name }}" in page
    assert "not rendered yet" in page
    for control in ('id="clear-task"', 'id="mark-success"', 'id="mark-failed"'):
        assert control in page
    viewer = text(pages.client(Role.VIEWER).get(PAGE))
    assert "clear-task" not in viewer and "mark-success" not in viewer


def test_a_waiting_task_says_why_and_has_no_log_yet(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    client = pages.client(Role.VIEWER)
    page = html.unescape(text(client.get(PAGE)))
    assert '<span id="ti-state" data-state="none"' in page
    waiting = re.search(r'<ul id="waiting-reasons">(.*?)</ul>', page, re.S)
    assert waiting and "<li>" in waiting.group(1)
    assert "has not started yet" in page and 'id="log"' not in page
    data = client.get("/ui" + PAGE).json
    assert data is not None and data["state"] == "none" and data["waiting"]


def test_a_running_try_has_a_live_log_and_tries_are_selectable(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    pages.set_task("r1", "stage.extract", S.RUNNING)
    client = pages.client(Role.VIEWER)
    page = text(client.get(PAGE))
    assert re.search(r'<pre id="log" data-try="1" data-offset="0" data-live="true"></pre>', page)
    pages.write_log("r1", "stage.extract", "started\n")
    page = text(client.get(PAGE + "?try=1"))
    assert re.search(r'data-offset="8" data-live="true">started\n</pre>', page)
    missing = client.get(PAGE + "?try=4")
    assert missing.status_code == 404 and "there is no try 4" in text(missing)
    bad = client.get(PAGE + "?try=last")
    assert bad.status_code == 400 and "try must be a whole number" in text(bad)


def test_clearing_a_task_with_its_downstream(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    for task_id in ("start", "stage.extract", "stage.load"):
        pages.set_task("r1", task_id, S.FAILED if task_id == "stage.load" else S.SUCCESS)
    client = pages.client(Role.USER)
    response = post(client, PAGE + "/clear", {"downstream": "true"})
    assert response.status_code == 302 and response.headers["Location"] == PAGE
    assert [_state(pages, t) for t in ("start", "stage.extract", "stage.load")] == [
        "success", "none", "none"
    ]  # fmt: skip
    [message] = flashes(client, PAGE)
    assert message == "Cleared 2 task instance(s) in 1 run(s): stage.extract, stage.load."
    [entry] = pages.audit("task.clear")
    assert (entry.owner, entry.run_id) == ("user", "r1")


def test_clearing_only_failed_leaves_a_success_alone(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    pages.set_task("r1", "stage.extract", S.SUCCESS)
    client = pages.client(Role.USER)
    post(client, PAGE + "/clear", {"only_failed": "true"})
    assert _state(pages, "stage.extract") == "success"
    assert flashes(client, PAGE)[0].startswith("Nothing to clear")
    assert pages.audit("task.clear") == []


def test_marking_a_task_and_its_upstream(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    client = pages.client(Role.USER)
    post(client, PAGE + "/mark", {"state": "success", "upstream": "true"})
    assert [_state(pages, t) for t in ("start", "stage.extract", "stage.load")] == [
        "success", "success", "none"
    ]  # fmt: skip
    assert flashes(client, PAGE) == ["Marked success: start, stage.extract."]
    post(client, PAGE + "/mark", {"state": "failed"})
    assert _state(pages, "stage.extract") == "failed"
    assert [e.owner for e in pages.audit("task.mark")] == ["user", "user"]


def test_task_actions_are_refused_to_viewers_bad_states_and_unknown_tasks(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    viewer = pages.client(Role.VIEWER)
    assert post(viewer, PAGE + "/clear").status_code == 403
    assert post(viewer, PAGE + "/mark", {"state": "success"}).status_code == 403
    user = pages.client(Role.USER)
    assert user.post(PAGE + "/mark", data={"state": "success"}).status_code == 400  # no CSRF
    post(user, PAGE + "/mark", {"state": "purple"})
    assert "can be marked success or failed" in flashes(user, PAGE)[0]
    unknown = post(user, "/dags/demo/runs/r1/tasks/nope/clear")
    assert unknown.status_code == 404 and "has no task" in html.unescape(text(unknown))
    assert _state(pages, "stage.extract") == "none"
    assert pages.audit("task.mark") == pages.audit("task.clear") == []
