"""Runs in the browser: unpause and trigger a DAG from the list, watch its grid go from
running to success without a reload, follow a task's log live, and clear a failed task so
it runs again. Each test has its own DAG (see conftest) whose tasks wait for a gate file
the test opens once it has seen them running."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import RUN_TIMEOUT_MS, UI, Standalone


def test_unpause_trigger_and_watch_the_grid_turn_green_without_a_reload(
    ui: UI, standalone: Standalone
) -> None:
    page = ui.page
    ui.goto("/dags")
    row = page.locator('tr[data-dag-id="e2e_live"]')
    expect(row).to_be_visible()
    toggle = page.locator('button.pause-toggle[data-dag-id="e2e_live"]')
    expect(toggle).to_have_attribute("data-paused", "true")
    ui.shot("1-paused")

    # The toggle acts in place: no reload, and the database agrees.
    ui.mark_page()
    toggle.click()
    expect(toggle).to_have_attribute("data-paused", "false")
    ui.assert_not_reloaded()
    assert standalone.api_ok("GET", "/dags/e2e_live")["is_paused"] is False
    ui.shot("2-unpaused")

    row.locator("a.trigger-link").click()
    expect(page).to_have_url(re.compile(r"/dags/e2e_live/trigger"))
    expect(page.locator("#trigger-form")).to_be_visible()
    ui.shot("3-trigger-form")
    page.locator("#trigger-submit").click()
    expect(page).to_have_url(re.compile(r"/dags/e2e_live/grid"))
    expect(page.locator(".flash").first).to_be_visible()
    expect(page.locator("table#grid")).to_be_visible()

    # One run: its header and cells follow the run live while the first task waits.
    ui.mark_page()
    header = page.locator("table#grid th.run-cell[data-run-id]")
    expect(header).to_have_count(1)
    run_id = header.get_attribute("data-run-id")
    assert run_id
    waiting = page.locator(f'td.ti-cell[data-run-id="{run_id}"][data-task-id="wait_gate"]')
    after = page.locator(f'td.ti-cell[data-run-id="{run_id}"][data-task-id="after"]')
    expect(waiting).to_have_attribute("data-state", "running", timeout=RUN_TIMEOUT_MS)
    expect(header).to_have_attribute("data-state", "running")
    assert after.get_attribute("data-state") != "success"
    ui.shot("4-running")

    standalone.open_gate("e2e_live")
    expect(header).to_have_attribute("data-state", "success", timeout=RUN_TIMEOUT_MS)
    expect(waiting).to_have_attribute("data-state", "success")
    expect(after).to_have_attribute("data-state", "success")
    ui.assert_not_reloaded()
    ui.shot("5-success")
    run = standalone.api_ok("GET", f"/dags/e2e_live/dagRuns/{run_id}")
    assert run["state"] == "success"


def test_a_task_page_opened_from_the_grid_tails_its_log_live(
    ui: UI, standalone: Standalone
) -> None:
    page = ui.page
    standalone.unpause_and_trigger("e2e_log", "e2e_log_run")
    ui.goto("/dags/e2e_log/grid")
    cell = page.locator('td.ti-cell[data-run-id="e2e_log_run"][data-task-id="tail"]')
    expect(cell).to_be_visible()
    ui.shot("1-grid")
    cell.click()
    expect(page).to_have_url(re.compile(r"/dags/e2e_log/runs/e2e_log_run/tasks/tail$"))

    log = page.locator("pre#log")
    state = page.locator("#ti-state")
    expect(log).to_contain_text("first line from tail", timeout=RUN_TIMEOUT_MS)
    expect(state).to_have_attribute("data-state", "running")
    assert "second line from tail" not in log.inner_text()  # the task waits for the gate
    ui.mark_page()
    ui.shot("2-first-line")

    standalone.open_gate("e2e_log")
    expect(log).to_contain_text("second line from tail", timeout=RUN_TIMEOUT_MS)
    expect(state).to_have_attribute("data-state", "success", timeout=RUN_TIMEOUT_MS)
    ui.assert_not_reloaded()
    ui.shot("3-second-line")


def test_clearing_a_failed_task_runs_it_again_until_it_succeeds(
    ui: UI, standalone: Standalone
) -> None:
    page = ui.page
    standalone.unpause_and_trigger("e2e_clear", "e2e_clear_run")
    ui.goto("/dags/e2e_clear/runs/e2e_clear_run/tasks/check")
    state = page.locator("#ti-state")
    expect(state).to_have_attribute("data-state", "failed", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("pre#log")).to_contain_text("checking the marker")
    ui.shot("1-failed")

    standalone.open_gate("e2e_clear")  # the marker file the task tests for
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#clear-task").click()
    # back to a state before a try (a fresh page after the clear's redirect, or in place)
    expect(page.locator('#ti-state:not([data-state="failed"])')).to_be_visible()
    ui.shot("2-cleared")
    expect(state).to_have_attribute("data-state", "success", timeout=RUN_TIMEOUT_MS)
    ui.shot("3-success")

    ti = standalone.api_ok("GET", "/dags/e2e_clear/dagRuns/e2e_clear_run/taskInstances/check")
    assert (ti["state"], ti["try_number"]) == ("success", 2)
    standalone.wait_for(
        "the cleared run to succeed",
        lambda: (
            standalone.api_ok("GET", "/dags/e2e_clear/dagRuns/e2e_clear_run")["state"] == "success"
        ),
    )
