"""Logging in through the login form, with a wrong password and then the right one."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import UI, Standalone


def test_login_refuses_a_wrong_password_then_lets_the_admin_in(
    anonymous_ui: UI, standalone: Standalone
) -> None:
    page = anonymous_ui.page
    anonymous_ui.goto("/dags")
    expect(page).to_have_url(re.compile(r"/login"))  # the DAG list needs a login

    page.locator('input[name="username"]').fill("admin")
    page.locator('input[name="password"]').fill("not-the-password")
    anonymous_ui.shot("1-wrong-password")
    page.locator('form:has(input[name="password"]) [type="submit"]').click()
    expect(page.locator(".flash-error")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("table")).to_have_count(0)
    anonymous_ui.shot("2-refused")

    page.locator('input[name="username"]').fill("admin")
    page.locator('input[name="password"]').fill(standalone.admin_password)
    page.locator('form:has(input[name="password"]) [type="submit"]').click()
    expect(page).to_have_url(re.compile(r"/dags$"))
    expect(page.locator("header .username")).to_have_text("admin")
    expect(page.locator('tr[data-dag-id="e2e_viewer"]')).to_be_visible()
    anonymous_ui.shot("3-logged-in")
