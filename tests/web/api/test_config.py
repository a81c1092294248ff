"""Variables, connections and pools: create, read, change, delete — and a connection's
secrets never leave the server."""

from __future__ import annotations

import json

from slipstream.roles import Role
from slipstream.sdk.connection import Connection
from slipstream.service import connections as connection_service
from slipstream.states import TaskInstanceState
from slipstream.store import audit
from slipstream.store.db import transaction

from .conftest import Api


def _events(api: Api, event: str) -> list[str | None]:
    with transaction(api.web.factory, readonly=True) as session:
        return [e.extra for e in audit.list_entries(session, event=event)]


def test_variables_lifecycle(api_any_db: Api) -> None:
    api = api_any_db
    created = api.post(
        "/variables", {"key": "env", "value": "prod", "description": "where"}, role=Role.OP
    )
    assert created == {"key": "env", "value": "prod", "description": "where"}
    api.post("/variables", {"key": "a_first", "value": "1"})
    assert "already exists" in api.error(
        "POST", "/variables", 409, json={"key": "env", "value": "x"}
    )
    listed = api.get("/variables")
    assert [v["key"] for v in listed["variables"]] == ["a_first", "env"]
    assert api.get("/variables?limit=1&offset=1")["variables"][0]["key"] == "env"

    patched = api.patch("/variables/env", {"value": "staging"})
    assert patched == {"key": "env", "value": "staging", "description": "where"}
    cleared = api.patch("/variables/env", {"description": None})
    assert cleared["description"] is None and cleared["value"] == "staging"
    assert api.get("/variables/env")["value"] == "staging"
    assert "renamed" in api.error("PATCH", "/variables/env", 400, json={"key": "other"})
    api.error("PATCH", "/variables/env", 400, json={})
    api.error("PATCH", "/variables/env", 400, json={"value": 3})

    api.call("DELETE", "/variables/env", expect=204)
    assert "does not exist" in api.error("GET", "/variables/env", 404)
    api.error("DELETE", "/variables/env", 404)
    api.error("PATCH", "/variables/env", 404, json={"value": "x"})
    assert len(_events(api, "variable.set")) == 4
    assert len(_events(api, "variable.delete")) == 1


def test_a_connection_password_is_write_only(api_any_db: Api) -> None:
    api = api_any_db
    secret, token = "hunter2-secret", "tok-12345"
    body = {
        "connection_id": "warehouse",
        "conn_type": "postgres",
        "host": "db.example.com",
        "login": "etl",
        "password": secret,
        "port": 5432,
        "extra": {"sslmode": "require", "api_token": token},
    }
    seen = [api.call("POST", "/connections", json=body, role=Role.OP).get_data(as_text=True)]
    seen.append(api.call("GET", "/connections").get_data(as_text=True))
    seen.append(api.call("GET", "/connections/warehouse").get_data(as_text=True))
    view = api.get("/connections/warehouse")
    assert view["password_set"] is True and "password" not in view
    assert json.loads(view["extra"]) == {"sslmode": "require", "api_token": "***"}

    # a PATCH without the password keeps it; the masked extra sent back keeps the token
    patched = api.call(
        "PATCH",
        "/connections/warehouse",
        json={"host": "db2.example.com", "extra": view["extra"]},
    )
    seen.append(patched.get_data(as_text=True))
    assert patched.json is not None and patched.json["host"] == "db2.example.com"
    stored = connection_service.get_connection(
        api.web.factory, api.web.app.extensions["slipstream"].fernet, "warehouse"
    )
    assert stored.password == secret
    assert stored.extra_dejson == {"sslmode": "require", "api_token": token}
    assert stored.port == 5432
    seen.append(json.dumps(_events(api, "connection.add") + _events(api, "connection.update")))
    for text in seen:
        assert secret not in text and token not in text

    none = api.patch("/connections/warehouse", {"password": None, "port": None})
    assert none["password_set"] is False and none["port"] is None

    assert "already exists" in api.error("POST", "/connections", 409, json=body)
    api.error("POST", "/connections", 400, json={**body, "connection_id": "x", "port": 70000})
    api.error("POST", "/connections", 400, json={"connection_id": "x"})
    extra = api.error(
        "POST", "/connections", 400, json={**body, "connection_id": "y", "extra": "[1]"}
    )
    assert "JSON object" in extra
    api.error("PATCH", "/connections/warehouse", 400, json={"connection_id": "other"})
    api.call("DELETE", "/connections/warehouse", expect=204)
    api.error("GET", "/connections/warehouse", 404)


def test_the_edit_form_update_keeps_the_password(api: Api) -> None:
    """update_connection is what the UI's edit form saves with (whole fields, password
    kept unless typed)."""
    fernet = api.web.app.extensions["slipstream"].fernet
    factory = api.web.factory
    connection_service.add_connection(
        factory, fernet, Connection("c", "http", password="pw-1", host="a"), actor="admin"
    )
    connection_service.update_connection(
        factory, fernet, Connection("c", "http", host="b"), actor="admin", keep_password=True
    )
    stored = connection_service.get_connection(factory, fernet, "c")
    assert (stored.host, stored.password) == ("b", "pw-1")
    connection_service.update_connection(
        factory, fernet, Connection("c", "http", host="b"), actor="admin"
    )
    assert connection_service.get_connection(factory, fernet, "c").password is None
    assert api.get("/connections/c")["password_set"] is False


def test_pools_lifecycle(api_any_db: Api) -> None:
    api = api_any_db
    assert [p["name"] for p in api.get("/pools", role=Role.VIEWER)["pools"]] == ["default_pool"]
    created = api.post("/pools", {"name": "etl", "slots": 2, "description": "ETL"})
    assert created == {
        "name": "etl",
        "slots": 2,
        "description": "ETL",
        "occupied_slots": 0,
        "running_slots": 0,
        "queued_slots": 0,
        "open_slots": 2,
    }
    # a running task of the pool occupies its slot
    api.trigger("r1")
    api.run_try("r1", "transform", TaskInstanceState.RUNNING)
    assert api.get("/pools/etl")["running_slots"] == 1
    assert api.get("/pools/etl")["open_slots"] == 1

    assert api.patch("/pools/etl", {"slots": 5})["slots"] == 5
    assert api.patch("/pools/etl", {"description": None})["description"] is None
    assert api.patch("/pools/default_pool", {"slots": 64})["slots"] == 64
    assert "already exists" in api.error("POST", "/pools", 409, json={"name": "etl", "slots": 1})
    api.error("POST", "/pools", 400, json={"name": "x", "slots": -1})
    api.error("POST", "/pools", 400, json={"name": "x", "slots": 1.5})
    api.error("PATCH", "/pools/etl", 400, json={"name": "renamed"})
    detail = api.error("DELETE", "/pools/default_pool", 400)
    assert "default_pool cannot be deleted" in detail
    api.call("DELETE", "/pools/etl", expect=204)
    api.error("GET", "/pools/etl", 404)
    assert len(_events(api, "pool.set")) == 4
