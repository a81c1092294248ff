"""Admin pages for connections, variables and pools: who may see and change them, what is
stored (passwords encrypted, never shown), and bad input refused with nothing written."""

from __future__ import annotations

import html

from sqlalchemy import select

from slipstream.roles import Role
from slipstream.service import connections as conn_service
from slipstream.service import pools as pool_service
from slipstream.service import variables as var_service
from slipstream.store.db import transaction
from slipstream.store.models import Connection as ConnectionRow

from ..conftest import WebEnv
from .conftest import flashes, post, text

SECRET = "Sw0rdfish-page-test"
CONN = {
    "conn_id": "warehouse",
    "conn_type": "postgres",
    "host": "db.example",
    "login": "loader",
    "password": SECRET,
    "port": "5433",
    "extra": '{"sslmode": "require", "api_key": "extra-secret-value"}',
}


def _conn(web: WebEnv, conn_id: str = "warehouse") -> conn_service.Connection:
    return conn_service.get_connection(
        web.factory, web.app.extensions["slipstream"].fernet, conn_id
    )


def test_connections_are_for_op_and_admin_only(web: WebEnv) -> None:
    for role in (Role.VIEWER, Role.USER):
        client = web.client(role)
        for path in ("/admin/connections", "/admin/connections/new", "/admin/variables"):
            assert client.get(path).status_code == 403, (role, path)
        assert post(client, "/admin/connections/new", CONN).status_code == 403
    assert web.client(Role.OP).get("/admin/connections").status_code == 200
    menu = text(web.client(Role.USER).get("/dags"))
    assert "/admin/pools" in menu and "/admin/connections" not in menu


def test_a_connection_password_is_stored_encrypted_and_never_shown(web: WebEnv) -> None:
    client = web.client(Role.OP)
    response = post(client, "/admin/connections/new", CONN)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/connections"
    conn = _conn(web)
    assert (conn.password, conn.host, conn.port) == (SECRET, "db.example", 5433)
    with transaction(web.factory, readonly=True) as session:
        row = session.scalar(select(ConnectionRow).where(ConnectionRow.conn_id == "warehouse"))
        assert row is not None and row.password is not None
        assert SECRET.encode() not in row.password and b"extra-secret" not in (row.extra or b"")
    listing = text(client.get("/admin/connections"))
    edit = text(client.get("/admin/connections/warehouse/edit"))
    for page in (listing, edit):
        assert SECRET not in page and "extra-secret-value" not in page
    assert "password set" in listing and "db.example" in listing
    assert 'type="password" name="password" value=""' in edit
    assert 'value="loader"' in edit
    [entry] = [e for e in _audit(web, "connection.add")]
    assert entry == "op"


def _audit(web: WebEnv, event: str) -> list[str | None]:
    from slipstream.store.models import AuditLog

    with transaction(web.factory, readonly=True) as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.event == event))
        return [r.owner for r in rows]


def test_editing_keeps_the_password_unless_a_new_one_is_typed(web: WebEnv) -> None:
    client = web.client(Role.OP)
    post(client, "/admin/connections/new", CONN)
    masked_extra = '{"sslmode": "disable", "api_key": "***"}'
    changed = {**CONN, "password": "", "host": "db2.example", "extra": masked_extra}
    response = post(client, "/admin/connections/warehouse/edit", changed)
    assert response.status_code == 302
    conn = _conn(web)
    assert (conn.password, conn.host) == (SECRET, "db2.example")
    assert conn.extra_dejson == {"sslmode": "disable", "api_key": "extra-secret-value"}
    post(client, "/admin/connections/warehouse/edit", {**changed, "password": "new-secret"})
    assert _conn(web).password == "new-secret"
    post(client, "/admin/connections/warehouse/edit", {**changed, "clear_password": "true"})
    assert _conn(web).password is None
    assert _audit(web, "connection.update") == ["op", "op", "op"]


def test_bad_connection_input_is_flashed_and_nothing_is_written(web: WebEnv) -> None:
    client = web.client(Role.ADMIN)
    for bad, message in (
        ({"port": "http"}, "The port must be a whole number"),
        ({"port": "70000"}, "has a port out of range"),
        ({"extra": "{nope"}, "is not valid JSON"),
        ({"conn_type": ""}, "The connection type cannot be empty"),
        ({"conn_id": " "}, "The connection id cannot be empty"),
    ):
        response = post(client, "/admin/connections/new", {**CONN, **bad})
        page = html.unescape(text(response))
        assert response.status_code == 400 and message in page, bad
        assert SECRET not in page  # the typed password is not sent back either
    assert conn_service.list_connections(web.factory, web.app.extensions["slipstream"].fernet) == []
    post(client, "/admin/connections/new", CONN)
    again = post(client, "/admin/connections/new", CONN)
    assert again.status_code == 400 and "already exists" in text(again)
    assert client.get("/admin/connections/nope/edit").status_code == 404


def test_deleting_a_connection_asks_first(web: WebEnv) -> None:
    client = web.client(Role.OP)
    post(client, "/admin/connections/new", CONN)
    confirm = text(client.get("/admin/connections/warehouse/delete"))
    assert 'id="confirm-delete-submit"' in confirm
    assert (
        len(conn_service.list_connections(web.factory, web.app.extensions["slipstream"].fernet))
        == 1
    )
    post(client, "/admin/connections/warehouse/delete")
    assert conn_service.list_connections(web.factory, web.app.extensions["slipstream"].fernet) == []
    assert flashes(client, "/admin/connections") == ["Connection warehouse deleted."]
    assert _audit(web, "connection.delete") == ["op"]


def test_variables_mask_sensitive_values(web: WebEnv) -> None:
    fernet = web.app.extensions["slipstream"].fernet
    client = web.client(Role.OP)
    post(
        client,
        "/admin/variables/new",
        {"key": "api_token", "value": "tok-123456", "description": "d"},
    )
    post(client, "/admin/variables/new", {"key": "region", "value": "eu-west"})
    listing = text(client.get("/admin/variables"))
    assert "tok-123456" not in listing and "eu-west" in listing and "***" in listing
    edit = text(client.get("/admin/variables/api_token/edit"))
    assert "tok-123456" not in edit and "leave this empty to keep it" in edit
    post(client, "/admin/variables/api_token/edit", {"value": "", "description": "new d"})
    record = var_service.get_variable(web.factory, fernet, "api_token")
    assert (record.value, record.description) == ("tok-123456", "new d")
    post(client, "/admin/variables/region/edit", {"value": "us-east"})
    assert var_service.get_variable(web.factory, fernet, "region").value == "us-east"
    taken = post(client, "/admin/variables/new", {"key": "region", "value": "x"})
    assert taken.status_code == 400 and "exists already" in text(taken)
    empty = post(client, "/admin/variables/new", {"key": "  ", "value": "x"})
    assert empty.status_code == 400 and "The key cannot be empty" in text(empty)
    post(client, "/admin/variables/region/delete")
    assert [v.key for v in var_service.list_variables(web.factory, fernet)] == ["api_token"]
    assert _audit(web, "variable.set") == ["op", "op", "op", "op"]
    assert _audit(web, "variable.delete") == ["op"]


def test_pools_are_read_by_all_and_changed_by_op(web: WebEnv) -> None:
    viewer = web.client(Role.VIEWER)
    page = text(viewer.get("/admin/pools"))
    assert 'data-pool="default_pool"' in page and "pool-add" not in page
    assert viewer.get("/admin/pools/new").status_code == 403
    assert post(viewer, "/admin/pools/new", {"pool": "x", "slots": "1"}).status_code == 403
    op = web.client(Role.OP)
    assert 'id="pool-add"' in text(op.get("/admin/pools"))
    post(op, "/admin/pools/new", {"pool": "gpu", "slots": "2", "description": "the GPUs"})
    assert pool_service.get_pool(web.factory, "gpu").slots == 2
    post(op, "/admin/pools/gpu/edit", {"slots": "4"})
    assert pool_service.get_pool(web.factory, "gpu").slots == 4
    for bad, message in (
        ({"slots": "many"}, "must be a whole number"),
        ({"slots": "-1"}, "at least 0"),
    ):
        response = post(op, "/admin/pools/gpu/edit", bad)
        assert response.status_code == 400 and message in text(response)
    assert pool_service.get_pool(web.factory, "gpu").slots == 4
    refused = text(op.get("/admin/pools/default_pool/delete"))
    assert "cannot be deleted" in refused and "confirm-delete-submit" not in refused
    post(op, "/admin/pools/default_pool/delete")
    assert "cannot be deleted" in flashes(op, "/admin/pools")[0]
    post(op, "/admin/pools/gpu/delete")
    assert [p.pool for p in pool_service.list_pools(web.factory)] == ["default_pool"]
    assert _audit(web, "pool.delete") == ["op"]
