"""The app's shell: login, CSRF, API authentication and roles, error shapes, headers."""

from __future__ import annotations

from slipstream.roles import Role
from slipstream.store import audit
from slipstream.store.db import transaction

from .conftest import WebEnv, basic_auth, csrf_token


def test_anonymous_reads_nothing_but_health(web: WebEnv) -> None:
    client = web.client()
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    response = client.get("/api/v1/dags")
    assert response.status_code == 401
    assert response.json is not None and "log in" in response.json["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    page = client.get("/dags")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_login_needs_csrf_and_right_password(web: WebEnv) -> None:
    client = web.client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    no_token = client.post("/login", data={"username": "admin", "password": "admin-password"})
    assert no_token.status_code == 400
    wrong = client.post(
        "/login", data={"username": "admin", "password": "nope-nope", "csrf_token": token}
    )
    assert wrong.status_code == 401
    assert "wrong username or password" in wrong.get_data(as_text=True)
    with transaction(web.factory, readonly=True) as session:
        failed = audit.list_entries(session, event="user.login_failed")
    assert [e.owner for e in failed] == ["admin"]
    ok = client.post(
        "/login",
        data={"username": "admin", "password": "admin-password", "csrf_token": token},
    )
    assert ok.status_code == 302
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/dags").status_code == 200


def test_login_never_redirects_off_site(web: WebEnv) -> None:
    client = web.client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login",
        data={
            "username": "viewer",
            "password": "viewer-password",
            "csrf_token": token,
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/dags"


def test_session_requests_need_the_csrf_header(web: WebEnv) -> None:
    client = web.client(Role.ADMIN)
    refused = client.patch("/api/v1/dags/nothing", json={"is_paused": True})
    assert refused.status_code == 400
    assert refused.json is not None and "CSRF" in refused.json["detail"]
    token = csrf_token(client.get("/dags").get_data(as_text=True))
    passed = client.patch(
        "/api/v1/dags/nothing", json={"is_paused": True}, headers={"X-CSRFToken": token}
    )
    assert passed.status_code == 404  # past the CSRF check, on to the missing DAG


def test_basic_and_bearer_auth_and_roles(web: WebEnv) -> None:
    client = web.client()
    viewer = web.api_headers(Role.VIEWER)
    assert client.get("/api/v1/dags", headers=viewer).status_code == 200
    denied = client.patch("/api/v1/dags/x", json={"is_paused": True}, headers=viewer)
    assert denied.status_code == 403
    assert denied.json is not None and "Viewer" in denied.json["detail"]
    wrong = client.get("/api/v1/dags", headers=basic_auth("viewer", "bad-password"))
    assert wrong.status_code == 401
    issued = client.post("/api/v1/auth/token", headers=web.api_headers(Role.USER))
    assert issued.status_code == 201 and issued.json is not None
    bearer = {"Authorization": f"Bearer {issued.json['token']}"}
    assert client.get("/api/v1/dags", headers=bearer).status_code == 200
    forged = {"Authorization": f"Bearer {issued.json['token']}x"}
    assert client.get("/api/v1/dags", headers=forged).status_code == 401


def test_password_reset_voids_tokens(web: WebEnv) -> None:
    from slipstream.clock import utcnow
    from slipstream.service import users

    client = web.client()
    issued = client.post("/api/v1/auth/token", headers=web.api_headers(Role.USER))
    assert issued.json is not None
    bearer = {"Authorization": f"Bearer {issued.json['token']}"}
    users.reset_password(web.factory, "user", "a-new-password", now=utcnow())
    assert client.get("/api/v1/dags", headers=bearer).status_code == 401
    assert client.get("/api/v1/dags", headers=web.api_headers(Role.USER)).status_code == 401
    fresh = basic_auth("user", "a-new-password")
    assert client.get("/api/v1/dags", headers=fresh).status_code == 200


def test_errors_are_json_with_a_message(web: WebEnv) -> None:
    client = web.client()
    admin = web.api_headers(Role.ADMIN)
    unknown = client.get("/api/v1/no-such-thing", headers=admin)
    assert unknown.status_code == 404 and unknown.json is not None
    malformed = client.patch(
        "/api/v1/dags/x", data="{not json", headers={**admin, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json is not None
    assert "not valid JSON" in malformed.json["detail"]
    big = client.patch(
        "/api/v1/dags/x",
        data=b"x" * (web.config.webserver.max_request_bytes + 1),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.json is not None
    bad_query = client.get("/api/v1/dags?limit=zero", headers=admin)
    assert bad_query.status_code == 400 and bad_query.json is not None
    assert "limit" in bad_query.json["detail"]


def test_security_headers(web: WebEnv) -> None:
    response = web.client().get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
