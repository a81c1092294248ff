"""The DAG list: search, tags, pause toggles by role, recent runs and their live JSON, the
import errors banner, and the CSRF check on its forms."""

from __future__ import annotations

import re

from slipstream.roles import Role
from slipstream.service import dags as dag_service
from slipstream.states import DagRunState

from .conftest import Pages, flashes, post, text


def test_the_list_shows_each_dag_with_its_controls(pages: Pages) -> None:
    pages.trigger(run_id="first")
    pages.trigger(run_id="second")
    pages.set_run_state("first", DagRunState.SUCCESS)
    page = text(pages.client(Role.USER).get("/dags"))
    assert '<tr data-dag-id="demo">' in page and '<tr data-dag-id="daily">' in page
    assert 'class="pause-toggle" data-dag-id="demo"' in page
    assert 'href="/dags/demo/trigger"' in page and "trigger-link" in page
    assert "data-team" in page  # owner
    assert "@daily" in page  # schedule
    dots = re.findall(r'class="run-dot state-(\w+)" data-run-id="(\w+)"', page)
    assert dots == [("queued", "second"), ("success", "first")]  # newest first
    assert "import-errors-banner" not in page


def test_a_viewer_sees_no_toggle_and_no_trigger(pages: Pages) -> None:
    page = text(pages.client(Role.VIEWER).get("/dags"))
    assert '<tr data-dag-id="demo">' in page
    assert "pause-toggle" not in page and "trigger-link" not in page
    assert 'class="pause-label"' in page


def test_search_tags_and_pages(pages: Pages) -> None:
    client = pages.client(Role.VIEWER)
    found = text(client.get("/dags?search=dem"))
    assert 'data-dag-id="demo"' in found and 'data-dag-id="daily"' not in found
    tagged = text(client.get("/dags?tags=team-b"))
    assert 'data-dag-id="daily"' in tagged and 'data-dag-id="demo"' not in tagged
    both = text(client.get("/dags?tags=team-a&tags=team-b"))
    assert 'data-dag-id="daily"' in both and 'data-dag-id="demo"' in both
    nothing = text(client.get("/dags?search=nope"))
    assert "No DAG matches these filters." in nothing
    # a page past the end, or a page number that is not one, is a page like any other
    assert client.get("/dags?page=9").status_code == 200
    assert client.get("/dags?page=x").status_code == 200


def test_pause_and_unpause_with_the_form(pages: Pages) -> None:
    client = pages.client(Role.USER)
    response = post(client, "/dags/demo/pause", {"paused": "true"})
    assert response.status_code == 302 and response.headers["Location"] == "/dags"
    assert dag_service.get_dag_row(pages.web.factory, "demo").is_paused
    assert flashes(client, "/dags") == ["DAG demo is paused."]
    post(client, "/dags/demo/pause", {"paused": "false", "next": "/dags/demo/grid"})
    assert not dag_service.get_dag_row(pages.web.factory, "demo").is_paused
    assert [e.owner for e in pages.audit("dag.pause")] == ["user"]
    assert [e.owner for e in pages.audit("dag.unpause")] == ["user"]


def test_pausing_is_refused_to_a_viewer_without_csrf_and_for_bad_input(pages: Pages) -> None:
    paused_before = dag_service.get_dag_row(pages.web.factory, "demo").is_paused
    viewer = pages.client(Role.VIEWER)
    assert post(viewer, "/dags/demo/pause", {"paused": "false"}).status_code == 403
    user = pages.client(Role.USER)
    no_token = user.post("/dags/demo/pause", data={"paused": "false"})
    assert no_token.status_code == 400 and "CSRF" in text(no_token)
    bad = post(user, "/dags/demo/pause", {"paused": "maybe"})
    assert bad.status_code == 302
    assert flashes(user, "/dags") == ["Paused must be true or false"]
    unknown = post(user, "/dags/nope/pause", {"paused": "true"})
    assert unknown.status_code == 404 and "does not exist" in text(unknown)
    assert dag_service.get_dag_row(pages.web.factory, "demo").is_paused == paused_before
    assert pages.audit("dag.pause") == pages.audit("dag.unpause") == []


def test_recent_runs_json_follows_the_runs(pages: Pages) -> None:
    client = pages.client(Role.VIEWER)
    assert client.get("/ui/dags/recent-runs?dag_id=demo&dag_id=daily").json == {
        "demo": [],
        "daily": [],
    }
    pages.trigger(run_id="r1")
    pages.set_run_state("r1", DagRunState.RUNNING)
    data = client.get("/ui/dags/recent-runs?dag_id=demo").json
    assert data is not None
    [run] = data["demo"]
    assert (run["run_id"], run["state"], run["url"]) == ("r1", "running", "/dags/demo/runs/r1")


def test_import_errors_show_a_banner_and_their_page(pages: Pages) -> None:
    pages.web.write_dag("broken.py", "from slipstream import DAG\nimport nothing_here_at_all\n")
    pages.web.parse()
    client = pages.client(Role.VIEWER)
    page = text(client.get("/dags"))
    assert "import-errors-banner" in page and 'href="/admin/import-errors"' in page
    errors = text(client.get("/admin/import-errors"))
    assert "broken.py" in errors and "nothing_here_at_all" in errors
