"""Triggering from the form: an input per param by its schema, the JSON conf under the form
values, bad values refused with a sentence (nothing written, the form keeps the values)."""

from __future__ import annotations

import html
import re

from slipstream.roles import Role
from slipstream.service import inspection

from .conftest import Pages, flashes, post, text


def _runs(pages: Pages) -> list[tuple[str, dict[str, object]]]:
    return [(r.run_id, r.conf) for r in inspection.list_runs(pages.web.factory, "demo")]


def test_the_form_has_an_input_per_param(pages: Pages) -> None:
    page = text(pages.client(Role.USER).get("/dags/demo/trigger"))
    assert '<form method="post" action="/dags/demo/trigger" id="trigger-form"' in page
    assert 'id="trigger-submit"' in page and 'name="csrf_token"' in page
    assert re.search(r'type="number" name="param:count" value="2" step="1"\s*min="1"', page)
    assert '<option value="&#34;fast&#34;" selected>fast</option>' in page
    assert 'type="checkbox" name="param:dry" value="true">' in page  # unchecked: False
    assert 'type="text" name="param:name" value="world"' in page
    assert "how many rows" in page  # the description
    assert 'name="conf"' in page and 'name="logical_date"' in page and 'name="run_id"' in page


def test_triggering_creates_the_run_with_the_form_over_the_json(pages: Pages) -> None:
    client = pages.client(Role.USER)
    response = post(
        client,
        "/dags/demo/trigger",
        {
            "param:count": "5",
            "param:mode": '"slow"',
            "param:dry": "true",
            "param:name": "world",  # left at its default: the JSON's value stays
            "conf": '{"name": "from json", "count": 1, "extra": [1, 2]}',
            "run_id": "my_run",
            "logical_date": "2024-03-01T06:00:00+00:00",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/dags/demo/grid"
    [(run_id, conf)] = _runs(pages)
    assert run_id == "my_run"
    assert conf == {"name": "from json", "count": 5, "extra": [1, 2], "mode": "slow", "dry": True}
    run = inspection.list_runs(pages.web.factory, "demo")[0]
    assert run.logical_date is not None and run.logical_date.isoformat().startswith("2024-03-01")
    assert run.triggered_by == "ui"
    assert any("Triggered run my_run of demo." in m for m in flashes(client, "/dags/demo/grid"))
    [entry] = pages.audit("dag.trigger")
    assert (entry.owner, entry.run_id) == ("user", "my_run")


def test_a_bad_param_value_is_refused_and_the_form_keeps_the_values(pages: Pages) -> None:
    client = pages.client(Role.USER)
    typed = {"param:count": "0", "param:name": "typed name", "conf": '{"k": 1}', "run_id": "keep"}
    response = post(client, "/dags/demo/trigger", typed)
    assert response.status_code == 400
    page = html.unescape(text(response))
    assert "Param 'count' is invalid: 0 is less than the minimum of 1" in page
    assert 'value="typed name"' in page and '{"k": 1}</textarea>' in page and 'value="keep"' in page
    for bad, message in (
        ({"param:count": "many"}, "Param 'count' must be a whole number, not 'many'"),
        ({"conf": "{oops"}, "The conf is not valid JSON"),
        ({"conf": "[1]"}, "The conf must be a JSON object"),
        ({"logical_date": "soon"}, "Logical date 'soon' is not an ISO date"),
    ):
        answer = post(client, "/dags/demo/trigger", bad)
        assert answer.status_code == 400 and message in html.unescape(text(answer)), bad
    assert _runs(pages) == []
    assert pages.audit("dag.trigger") == []


def test_a_duplicate_run_id_is_refused(pages: Pages) -> None:
    pages.trigger(run_id="taken")
    response = post(pages.client(Role.OP), "/dags/demo/trigger", {"run_id": "taken"})
    assert response.status_code == 400
    assert "already has a run 'taken'" in html.unescape(text(response))
    assert len(_runs(pages)) == 1


def test_a_viewer_cannot_trigger(pages: Pages) -> None:
    viewer = pages.client(Role.VIEWER)
    assert viewer.get("/dags/demo/trigger").status_code == 403
    refused = post(viewer, "/dags/demo/trigger", {"run_id": "nope"})
    assert refused.status_code == 403 and "Viewer" in text(refused)
    no_csrf = pages.client(Role.USER).post("/dags/demo/trigger", data={"run_id": "x"})
    assert no_csrf.status_code == 400
    assert _runs(pages) == []


def test_a_paused_dag_says_the_run_waits(pages: Pages) -> None:
    client = pages.client(Role.USER)
    post(client, "/dags/demo/pause", {"paused": "true"})
    post(client, "/dags/demo/trigger", {"run_id": "later"})
    messages = flashes(client, "/dags/demo/grid")
    assert "Triggered run later of demo." in messages
    assert any("demo is paused" in m for m in messages)
