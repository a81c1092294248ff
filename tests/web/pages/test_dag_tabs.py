"""A DAG's tabs: grid, graph, runs, code and details, the JSON their scripts poll, and a
404 page with a sentence for an unknown DAG or run."""

from __future__ import annotations

import html
import json
import re

from slipstream.roles import Role
from slipstream.states import DagRunState, TaskInstanceState

from .conftest import DEMO_TASKS, Pages, text


def test_a_dag_opens_on_its_grid_with_the_header(pages: Pages) -> None:
    client = pages.client(Role.USER)
    response = client.get("/dags/demo")
    assert response.status_code == 302 and response.headers["Location"] == "/dags/demo/grid"
    page = text(client.get("/dags/demo/grid"))
    assert 'class="pause-toggle" data-dag-id="demo"' in page
    assert 'id="trigger-button"' in page
    for tab in ("grid", "graph", "runs", "code", "details"):
        assert f'href="/dags/demo/{tab}"' in page
    viewer = text(pages.client(Role.VIEWER).get("/dags/demo/grid"))
    assert "trigger-button" not in viewer and "pause-toggle" not in viewer


def test_the_grid_has_a_column_per_run_and_a_row_per_task(pages: Pages) -> None:
    pages.trigger(run_id="old")
    pages.trigger(run_id="new")
    pages.set_task("old", "start", TaskInstanceState.SUCCESS)
    pages.set_task("old", "stage.extract", TaskInstanceState.FAILED)
    pages.set_run_state("old", DagRunState.FAILED)
    page = text(pages.client(Role.VIEWER).get("/dags/demo/grid"))
    headers = re.findall(r'<th class="run-cell" data-run-id="(\w+)" data-state="(\w+)"', page)
    assert headers == [("old", "failed"), ("new", "queued")]  # oldest on the left
    rows = re.findall(r'<tr data-task-id="([\w.]+)">', page)
    assert rows == DEMO_TASKS
    assert 'data-group-id="stage"' in page  # the TaskGroup's header row
    cell = re.search(
        r'<td class="ti-cell" data-run-id="old" data-task-id="stage.extract" '
        r'data-state="(\w+)">\s*<a href="([^"]+)"',
        page,
    )
    assert cell and cell.groups() == ("failed", "/dags/demo/runs/old/tasks/stage.extract")
    assert 'class="legend"' in page
    assert 'data-follow="true"' in page and 'data-live="true"' in page


def test_grid_json_and_older_runs(pages: Pages) -> None:
    for n in range(3):
        pages.trigger(run_id=f"r{n}")
    pages.set_task("r2", "start", TaskInstanceState.RUNNING)
    client = pages.client(Role.VIEWER)
    data = client.get("/ui/dags/demo/grid").json
    assert data is not None
    assert [r["run_id"] for r in data["runs"]] == ["r0", "r1", "r2"]
    assert data["tasks"] == DEMO_TASKS
    assert data["cells"]["r2\x1fstart"]["state"] == "running"
    assert data["live"] is True
    # paging back: runs due before the given time
    page = text(client.get("/dags/demo/grid?before=2000-01-01T00:00:00%2B00:00"))
    assert "run-cell" not in page and 'id="grid-newest"' in page
    bad = client.get("/dags/demo/grid?before=yesterday")
    assert bad.status_code == 400 and "not an ISO date" in text(bad)


def test_the_graph_passes_its_nodes_edges_and_groups_to_the_script(pages: Pages) -> None:
    pages.trigger(run_id="r1")
    pages.set_task("r1", "start", TaskInstanceState.SUCCESS)
    page = text(pages.client(Role.VIEWER).get("/dags/demo/graph"))
    assert '<svg id="graph"' in page and "vendor/dagre.min.js" in page
    found = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', page)
    assert found
    data = json.loads(found.group(1))
    assert data["run_id"] == "r1"
    assert {n["id"]: n["state"] for n in data["nodes"]}["start"] == "success"
    assert ["start", "stage.extract"] in data["edges"]
    assert [g["group_id"] for g in data["groups"]] == ["stage"]
    node = next(n for n in data["nodes"] if n["id"] == "stage.load")
    assert node["url"] == "/dags/demo/runs/r1/tasks/stage.load" and node["label"] == "load"
    fresh = pages.client(Role.VIEWER).get("/ui/dags/demo/graph?run_id=r1").json
    assert fresh is not None and fresh["run_state"] == "queued" and fresh["live"] is True


def test_graph_data_is_escaped_inside_its_script_block(pages: Pages) -> None:
    pages.trigger(run_id="x</script><script>alert(1)</script>")
    page = text(pages.client(Role.VIEWER).get("/dags/demo/graph"))
    block = re.search(r'id="graph-data">(.*?)</script>', page, re.S)
    assert block and "<script>" not in block.group(1)
    assert json.loads(block.group(1))["run_id"].endswith("alert(1)</script>")


def test_the_runs_tab_filters_by_state_and_pages(pages: Pages) -> None:
    pages.trigger(run_id="done")
    pages.trigger(run_id="waiting")
    pages.set_run_state("done", DagRunState.SUCCESS)
    client = pages.client(Role.VIEWER)
    page = text(client.get("/dags/demo/runs"))
    assert re.findall(r'<tr data-run-id="(\w+)"', page) == ["waiting", "done"]
    assert 'href="/dags/demo/runs/done"' in page
    only = text(client.get("/dags/demo/runs?state=success"))
    assert re.findall(r'<tr data-run-id="(\w+)"', only) == ["done"]
    bad = client.get("/dags/demo/runs?state=sleepy")
    assert bad.status_code == 400 and "is not a run state" in text(bad)


def test_the_code_tab_shows_the_escaped_source_with_line_numbers(pages: Pages) -> None:
    page = text(pages.client(Role.VIEWER).get("/dags/demo/code"))
    assert '<pre id="code">' in page
    assert 'bash_command="echo {{ params.name }}"' not in page  # quotes are escaped
    assert "bash_command=&#34;echo {{ params.name }}&#34;" in page
    assert page.count('<span class="line">') == len(
        pages.web.dags_folder.joinpath("demo.py").read_text().splitlines()
    )


def test_the_details_tab(pages: Pages) -> None:
    client = pages.client(Role.VIEWER)
    page = text(client.get("/dags/demo/details"))
    for expected in ("how many rows", "integer", "enum (fast, slow)", "data-team", "demo.py"):
        assert expected in page
    assert 'id="next-runs"' not in page and "has no schedule" in page
    assert re.findall(r'<tr data-task-id="([\w.]+)">', page) == DEMO_TASKS
    daily = text(client.get("/dags/daily/details"))
    assert 'id="next-runs"' in daily


def test_unknown_dags_and_runs_are_404_pages_with_a_sentence(pages: Pages) -> None:
    client = pages.client(Role.ADMIN)
    for path in (
        "/dags/nope",
        "/dags/nope/grid",
        "/dags/nope/graph",
        "/dags/nope/runs",
        "/dags/nope/code",
        "/dags/nope/details",
        "/dags/nope/trigger",
        "/dags/demo/runs/nope",
        "/dags/demo/graph?run_id=nope",
        "/dags/demo/runs/nope/tasks/start",
        "/ui/dags/nope/grid",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        page = html.unescape(text(response))
        assert re.search(r"(DAG 'nope' does not exist|has no run 'nope')", page), path
