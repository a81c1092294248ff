"""Admin pages for users (Admin only) and the audit log (anyone who reads)."""

from __future__ import annotations

import html
import re

from flask.testing import FlaskClient

from slipstream.roles import Role
from slipstream.service import users as user_service

from ..conftest import WebEnv, csrf_token
from .conftest import flashes, post, text


def _login(web: WebEnv, username: str, password: str) -> FlaskClient:
    client = web.app.test_client()
    token = csrf_token(text(client.get("/login")))
    form = {"username": username, "password": password, "csrf_token": token}
    assert client.post("/login", data=form).status_code == 302
    return client


def test_only_admins_manage_users(web: WebEnv) -> None:
    for role in (Role.VIEWER, Role.USER, Role.OP):
        client = web.client(role)
        assert client.get("/admin/users").status_code == 403
        new = {"username": "x", "role": "Viewer", "password": "long-enough"}
        assert post(client, "/admin/users/new", new).status_code == 403
        assert "/admin/users" not in text(client.get("/dags"))
    assert 'data-username="admin"' in text(web.client(Role.ADMIN).get("/admin/users"))


def test_create_change_role_reset_password_and_delete(web: WebEnv) -> None:
    admin = web.client(Role.ADMIN)
    new = {"username": "carol", "role": "User", "password": "carol-password", "email": "c@x.org"}
    assert post(admin, "/admin/users/new", new).status_code == 302
    assert user_service.get_user(web.factory, "carol").role == Role.USER
    carol = _login(web, "carol", "carol-password")
    assert carol.get("/admin/connections").status_code == 403

    post(admin, "/admin/users/carol/edit", {"role": "Op", "password": ""})
    assert user_service.get_user(web.factory, "carol").role == Role.OP
    assert carol.get("/admin/connections").status_code == 200  # the new role, at once
    assert flashes(admin, "/admin/users") == ["User carol saved: role Op."]

    post(admin, "/admin/users/carol/edit", {"role": "Op", "password": "another-password"})
    assert carol.get("/dags").status_code == 302  # the old session is void
    assert _login(web, "carol", "another-password").get("/dags").status_code == 200
    assert 'id="confirm-delete-submit"' in text(admin.get("/admin/users/carol/delete"))
    post(admin, "/admin/users/carol/delete")
    assert "carol" not in [u.username for u in user_service.list_users(web.factory)]
    with_events = text(admin.get("/admin/audit-log?owner=admin"))
    for event in ("user.create", "user.set_role", "user.reset_password", "user.delete"):
        assert f"<code>{event}</code>" in with_events


def test_bad_user_input_and_deleting_oneself_are_refused(web: WebEnv) -> None:
    admin = web.client(Role.ADMIN)
    for bad, message in (
        (
            {"username": "bad name!", "role": "User", "password": "long-enough"},
            "is not a valid username",
        ),
        ({"username": "dave", "role": "Boss", "password": "long-enough"}, "'Boss' is not a role"),
        ({"username": "dave", "role": "User", "password": "short"}, "at least 8 characters"),
        ({"username": "viewer", "role": "User", "password": "long-enough"}, "exists already"),
    ):
        response = post(admin, "/admin/users/new", bad)
        assert response.status_code == 400 and message in html.unescape(text(response)), bad
    assert len(user_service.list_users(web.factory)) == 4
    short = post(admin, "/admin/users/viewer/edit", {"role": "Op", "password": "short"})
    assert short.status_code == 400
    assert user_service.get_user(web.factory, "viewer").role == Role.VIEWER  # nothing changed
    page = text(admin.get("/admin/users/admin/delete"))
    assert "cannot delete your own user" in page and "confirm-delete-submit" not in page
    post(admin, "/admin/users/admin/delete")
    assert "You cannot delete your own user." in flashes(admin, "/admin/users")
    assert user_service.get_user(web.factory, "admin").role == Role.ADMIN
    assert admin.get("/admin/users/nobody/edit").status_code == 404


def test_the_audit_log_filters_and_pages(web: WebEnv) -> None:
    admin = web.client(Role.ADMIN)
    for n in range(3):
        post(admin, "/admin/pools/new", {"pool": f"p{n}", "slots": "1"})
    viewer = web.client(Role.VIEWER)
    page = text(viewer.get("/admin/audit-log?event=pool.set"))
    assert re.findall(r'<tr data-event="([\w.]+)">', page) == ["pool.set"] * 3
    assert "&#34;pool&#34;: &#34;p2&#34;" in page.split('data-event="pool.set"')[1]  # newest first
    assert "<code>user.login</code>" in text(viewer.get("/admin/audit-log?owner=viewer"))
    assert "No entries match" in text(viewer.get("/admin/audit-log?owner=nobody"))
    assert viewer.get("/admin/audit-log?page=99").status_code == 200
