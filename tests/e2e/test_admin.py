"""Admin pages and roles: a connection's password goes in through the form and never comes
back out (pages or API); a Viewer sees no controls and is refused a trigger."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from .conftest import UI, Browsing, Standalone

SECRET = "Sw0rdfish-e2e-7f3a9c"


def test_a_connection_password_is_saved_but_never_shown(ui: UI, standalone: Standalone) -> None:
    page = ui.page
    ui.goto("/admin/connections/new")
    values = {
        "conn_id": "e2e_warehouse",
        "conn_type": "postgres",
        "host": "warehouse.e2e.example",
        "login": "e2e_loader",
        "password": SECRET,
        "port": "5433",
    }
    for name, value in values.items():
        field = page.locator(f'[name="{name}"]')
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    ui.shot("1-form")
    page.locator("#connection-submit").click()
    expect(page).not_to_have_url(re.compile(r"/admin/connections/new"))
    assert SECRET not in page.content()
    ui.shot("2-saved")

    ui.goto("/admin/connections")
    expect(page.locator("body")).to_contain_text("e2e_warehouse")
    expect(page.locator("body")).to_contain_text("warehouse.e2e.example")
    assert SECRET not in page.content()
    ui.shot("3-list")

    ui.goto("/admin/connections/e2e_warehouse/edit")
    expect(page.locator('[name="host"]')).to_have_value("warehouse.e2e.example")
    expect(page.locator('[name="login"]')).to_have_value("e2e_loader")
    expect(page.locator('[name="password"]')).not_to_have_value(SECRET)
    assert SECRET not in page.content()
    ui.shot("4-edit")

    status, data, raw = standalone.api("GET", "/connections/e2e_warehouse")
    assert status == 200, raw
    assert data["host"] == "warehouse.e2e.example"
    assert SECRET not in raw

    # It was saved all the same: the CLI shows it when asked to.
    shown = standalone.cli("connections", "get", "e2e_warehouse", "--show-secrets", "-o", "json")
    assert SECRET in shown.stdout
    assert SECRET not in standalone.cli("connections", "get", "e2e_warehouse").stdout


def test_a_viewer_sees_no_controls_and_cannot_trigger(
    browsing: Browsing, standalone: Standalone
) -> None:
    password = "viewer-e2e-password"
    standalone.cli(
        "users", "create", "--username", "e2e_viewer_user", "--role", "viewer",
        "--password", password,
    )  # fmt: skip
    standalone.users["e2e_viewer_user"] = password
    viewer = browsing.login_as("e2e_viewer_user", password)
    page = viewer.page
    viewer.goto("/dags")
    expect(page.locator('tr[data-dag-id="e2e_viewer"]')).to_be_visible()
    expect(page.locator("header .username")).to_have_text("e2e_viewer_user")
    expect(page.locator("button.pause-toggle:enabled")).to_have_count(0)
    expect(page.locator("a.trigger-link")).to_have_count(0)
    viewer.shot("1-dag-list")

    # Forms posted by hand, with the session's own CSRF token, are refused.
    token = viewer.csrf_token()
    for path, form in (
        ("/dags/e2e_viewer/trigger", {"csrf_token": token}),
        ("/dags/e2e_viewer/pause", {"csrf_token": token, "paused": "false"}),
    ):
        response = page.request.post(viewer.url(path), form=form, max_redirects=0)
        assert response.status == 403, (path, response.status, response.text())

    status, _, raw = standalone.api(
        "POST", "/dags/e2e_viewer/dagRuns", {"dag_run_id": "refused"}, user="e2e_viewer_user"
    )
    assert status == 403, raw
    runs = standalone.api_ok("GET", "/dags/e2e_viewer/dagRuns")
    assert runs["total_entries"] == 0, json.dumps(runs)
    assert standalone.api_ok("GET", "/dags/e2e_viewer")["is_paused"] is True
