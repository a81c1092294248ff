"""The audit log and import errors; and bad input of every kind getting a 4xx with one
sentence, never a 500."""

from __future__ import annotations

import pytest

from slipstream.roles import Role

from .conftest import Api


def test_event_log_filters_and_pages(api: Api) -> None:
    api.trigger("r1")
    api.trigger("r2", role=Role.USER)
    api.post("/variables", {"key": "k", "value": "v"})
    everything = api.get("/eventLogs", role=Role.VIEWER)
    events = [(e["event"], e["owner"]) for e in everything["event_logs"]]
    assert events == [
        ("variable.set", "admin"),
        ("dag.trigger", "user"),
        ("dag.trigger", "admin"),
    ]
    assert everything["total_entries"] == 3
    by_user = api.get("/eventLogs?owner=user")
    assert [e["run_id"] for e in by_user["event_logs"]] == ["r2"]
    triggers = api.get("/eventLogs?event=dag.trigger&dag_id=demo&limit=1&offset=1")
    assert triggers["total_entries"] == 2
    assert [e["run_id"] for e in triggers["event_logs"]] == ["r1"]
    assert api.get("/eventLogs?dag_id=other")["total_entries"] == 0
    api.error("GET", "/eventLogs?limit=0", 400)


def test_import_errors_are_listed(api: Api) -> None:
    assert api.get("/importErrors") == {"import_errors": [], "total_entries": 0}
    api.web.write_dag(
        "broken.py", "from slipstream.sdk import DAG\nimport no_such_module_anywhere\n"
    )
    api.web.parse()
    listed = api.get("/importErrors", role=Role.VIEWER)
    assert listed["total_entries"] == 1
    (error,) = listed["import_errors"]
    assert error["filename"].endswith("broken.py")
    assert "no_such_module_anywhere" in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/dags/ghost",
        "/dags/ghost/details",
        "/dags/ghost/tasks",
        "/dags/ghost/dagRuns",
        "/dags/demo/dagRuns/ghost",
        "/dags/demo/dagRuns/ghost/taskInstances",
        "/dags/demo/dagRuns/r1/taskInstances/ghost",
        "/dags/demo/dagRuns/r1/taskInstances/ghost/tries",
        "/dags/demo/dagRuns/r1/taskInstances/ghost/logs/1",
        "/dags/demo/dagRuns/r1/taskInstances/ghost/xcomEntries",
        "/variables/ghost",
        "/connections/ghost",
        "/pools/ghost",
    ],
)
def test_unknown_ids_are_404_with_a_message(api: Api, path: str) -> None:
    api.trigger("r1")
    assert "ghost" in api.error("GET", path, 404)


def test_malformed_bodies_are_400(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    runs = "/dags/demo/dagRuns"
    assert "not valid JSON" in api.error("POST", runs, 400, data="{nope", headers=headers)
    assert "not valid JSON" in api.error("POST", runs, 400, data=b"\xff\xfe", headers=headers)
    assert "not valid JSON" in api.error("POST", runs, 400, data='{"conf": NaN}', headers=headers)
    deep = "[" * 100_000 + "]" * 100_000
    assert "not valid JSON" in api.error("POST", runs, 400, data=deep, headers=headers)
    nested = '{"conf": {"a": ' + "[" * 900 + "]" * 900 + "}}"
    assert "nested" in api.error("POST", runs, 400, data=nested, headers=headers)
    deep_extra = {"connection_id": "c", "conn_type": "http", "extra": "[" * 50_000 + "]" * 50_000}
    assert "nested" in api.error("POST", "/connections", 400, json=deep_extra)
    assert "Content-Type" in api.error("POST", runs, 400, data="{}")
    assert "object" in api.error("POST", runs, 400, json=None, data="null", headers=headers)
    assert "conf" in api.error("POST", runs, 400, json={"conf": "text"})
    assert "NUL" in api.error("POST", runs, 400, json={"dag_run_id": "a\x00b"})
    surrogate = '{"dag_run_id": "\\ud800"}'
    assert "Unicode" in api.error("POST", runs, 400, data=surrogate, headers=headers)
    assert "too long" in api.error("POST", runs, 400, json={"dag_run_id": "r" * 251})
    assert "NUL" in api.error("GET", "/variables/a%00b", 400)
    assert "NUL" in api.error("GET", "/eventLogs?owner=a%00b", 400)
    api.error("POST", "/pools", 400, json={"name": "p", "slots": 10**40})
    api.error("POST", "/pools", 400, json={"name": "p", "slots": True})
    api.error("GET", "/dags/demo/dagRuns?offset=99999999999999999999", 400)
    api.error("GET", "/dags/demo/dagRuns?logical_date_gte=0001-01-01T00:00:00%2B05:00", 400)
    api.error("GET", "/dags/demo/dagRuns?logical_date_gte=soon", 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/dags/demo/dagRuns"),
        ("POST", "/variables"),
        ("POST", "/connections"),
        ("PATCH", "/pools/default_pool"),
        ("POST", "/dags/demo/clearTaskInstances"),
    ],
)
def test_oversize_bodies_are_413(api: Api, method: str, path: str) -> None:
    limit = api.web.config.webserver.max_request_bytes
    body = '{"conf": {"x": "' + "a" * limit + '"}}'
    detail = api.error(method, path, 413, data=body, headers={"Content-Type": "application/json"})
    assert str(limit) in detail


def test_anonymous_writes_are_401_not_a_csrf_error(api: Api) -> None:
    detail = api.error("POST", "/dags/demo/dagRuns", 401, role=None, json={})
    assert "log in" in detail
    # a logged-in browser session still needs its CSRF token
    browser = api.web.client(Role.ADMIN)
    refused = browser.post("/api/v1/dags/demo/dagRuns", json={})
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)


def test_dates_at_the_calendar_edges_are_400(api: Api) -> None:
    api.web.write_dag("tokyo.py", TOKYO_DAG)
    api.web.parse()
    for when in ("9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00", "9999-12-31T23:00:00"):
        detail = api.error("POST", "/dags/tokyo/dagRuns", 400, json={"logical_date": when})
        assert "calendar" in detail
        clear = {"start_date": when, "dry_run": True}
        api.call("POST", "/dags/tokyo/clearTaskInstances", json=clear, expect=None)
    # naive dates are the DAG's wall clock: 09:00 in Tokyo is midnight UTC
    run = api.post("/dags/tokyo/dagRuns", {"logical_date": "2024-05-01T09:00:00"})
    assert run["logical_date"] == "2024-05-01T00:00:00+00:00"
    backwards = {"start_date": "2024-05-02T00:00:00Z", "end_date": "2024-05-01T00:00:00Z"}
    detail = api.error("POST", "/dags/tokyo/clearTaskInstances", 400, json=backwards)
    assert "is after end_date" in detail


TOKYO_DAG = """
from datetime import datetime
from zoneinfo import ZoneInfo

from slipstream.sdk import DAG
from slipstream.sdk.operators.bash import BashOperator

with DAG(
    "tokyo", start_date=datetime(2024, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo")), schedule="0 6 * * *"
) as dag:
    BashOperator(task_id="a", bash_command="echo a")
"""
