"""Every declared operation, called by nobody and by each role: anonymous callers get 401
(except health and the OpenAPI document), a role without the permission 403, a role with
it gets past the check — and nothing answers 500."""

from __future__ import annotations

import re
from typing import Any

from slipstream.api import registry
from slipstream.api.registry import Operation
from slipstream.roles import Role
from slipstream.states import TaskInstanceState

from .conftest import Api

#: a value for each path parameter, naming things the fixture creates
PATH_VALUES = {
    "dag_id": "demo",
    "dag_run_id": "r1",
    "task_id": "extract",
    "try_number": "1",
    "xcom_key": "return_value",
    "variable_key": "var1",
    "connection_id": "conn1",
    "pool_name": "pool1",
}

#: a body each operation accepts, so an allowed role gets past validation too
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/dags/{dag_id}"): {"is_paused": True},
    ("POST", "/dags/{dag_id}/dagRuns"): {"conf": {"count": 2}},
    ("PATCH", "/dags/{dag_id}/dagRuns/{dag_run_id}"): {"state": "queued"},
    ("POST", "/dags/{dag_id}/dagRuns/{dag_run_id}/clear"): {"dry_run": True},
    ("PATCH", "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"): {
        "new_state": "success"
    },
    ("POST", "/dags/{dag_id}/clearTaskInstances"): {"dry_run": True},
    ("POST", "/variables"): {"key": "var-new", "value": "v"},
    ("PATCH", "/variables/{variable_key}"): {"value": "v2"},
    ("POST", "/connections"): {"connection_id": "conn-new", "conn_type": "http"},
    ("PATCH", "/connections/{connection_id}"): {"host": "example.com"},
    ("POST", "/pools"): {"name": "pool-new", "slots": 1},
    ("PATCH", "/pools/{pool_name}"): {"slots": 3},
}


def _path(op: Operation) -> str:
    return re.sub(r"{(\w+)}", lambda m: PATH_VALUES[m.group(1)], op.path)


def _call(api: Api, op: Operation, role: Role | None) -> int:
    body = BODIES.get((op.method, op.path))
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    return api.call(op.method, _path(op), role=role, expect=None, **kwargs).status_code


def test_every_operation_has_a_body_fixture() -> None:
    missing = [
        f"{op.method} {op.path}"
        for op in registry.operations
        if op.body is not None and (op.method, op.path) not in BODIES
    ]
    assert not missing, missing


def test_each_role_gets_what_its_permissions_allow(api: Api) -> None:
    api.trigger("r1")
    api.run_try(
        "r1", "extract", TaskInstanceState.SUCCESS, log="hello\n", xcoms={"return_value": "1"}
    )
    api.post("/variables", {"key": "var1", "value": "x"})
    api.post("/connections", {"connection_id": "conn1", "conn_type": "http"})
    api.post("/pools", {"name": "pool1", "slots": 2})
    # the creating and deleting calls go last, so the rest see the fixture's objects
    ordered = sorted(registry.operations, key=lambda op: op.method in ("POST", "DELETE"))
    seen = []
    for op in ordered:
        name = f"{op.method} {op.path}"
        anonymous = _call(api, op, None)
        if op.permission is None:
            assert anonymous == 200, name
        else:
            assert anonymous == 401, name
        # the weakest role first: a DELETE an Admin made must not hide a later 403
        for role in (Role.VIEWER, Role.USER, Role.OP, Role.ADMIN):
            status = _call(api, op, role)
            if op.permission is None or role.allows(op.permission):
                assert status not in (401, 403), (name, role, status)
            else:
                assert status == 403, (name, role, status)
        seen.append(name)
    assert len(seen) == len(registry.operations) >= 35


def test_viewers_and_users_cannot_read_variables_or_connections(api: Api) -> None:
    api.post("/variables", {"key": "secret_thing", "value": "s3cr3t"})
    for role in (Role.VIEWER, Role.USER):
        detail = api.error("GET", "/variables", 403, role=role)
        assert "manage_config" in detail
        assert "s3cr3t" not in api.call(
            "GET", "/variables/secret_thing", role=role, expect=403
        ).get_data(as_text=True)
        api.error("GET", "/connections", 403, role=role)
    assert api.get("/variables", role=Role.OP)["total_entries"] == 1
    # pools are readable by everyone, changeable only with manage_config
    assert api.get("/pools", role=Role.VIEWER)["total_entries"] == 1
    api.error("POST", "/pools", 403, role=Role.USER, json={"name": "p", "slots": 1})
