"""Take the README's pictures of the web UI: a real ``slipstream standalone`` with the example
DAGs, a few runs (one with a task that fails for good), and a headless Chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]

Writes ui-dags.png (the DAG list), ui-grid.png (a DAG's grid), ui-graph.png (its graph),
ui-gantt.png (a run's Gantt chart) and ui-task.png (a task instance with its log), each
1280x800. Chromium is the system's ($SLIPSTREAM_TEST_CHROMIUM, else /usr/bin/chromium):
``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SIZE = {"width": 1280, "height": 800}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: the DAG the grid, graph, Gantt and task pictures show, and the runs triggered for it
FEATURED = "example_trigger_rules"
FEATURED_RUNS = 4
#: other DAGs run once each, so the list shows recent runs
OTHERS = ("example_bash_python", "example_branching", "example_taskflow_etl", "example_task_groups")
DEADLINE = 180.0


def find_chromium(given: str | None) -> str:
    for candidate in (
        given,
        os.environ.get("SLIPSTREAM_TEST_CHROMIUM"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        shutil.which("chromium"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("no Chromium found: apt-get install chromium, or pass --chromium PATH")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Instance:
    """``slipstream standalone`` on a fresh home, stopped with Ctrl-C (SIGINT)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM")}
        env.update(
            {
                "SLIPSTREAM_HOME": str(home),
                "SLIPSTREAM__CORE__DAGS_FOLDER": str(home / "dags"),
                "SLIPSTREAM__CORE__LOAD_EXAMPLES": "true",
                "SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        (home / "dags").mkdir(parents=True)
        self.output = home / "standalone.out"
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slipstream", "standalone", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait("slipstream is ready", lambda: "slipstream is ready" in self.log())
        _, _, self.password = (
            (home / "standalone_admin_password.txt").read_text().strip().partition(":")
        )

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def wait(self, what: str, check: Any, deadline: float = DEADLINE) -> Any:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            value = check()
            if value:
                return value
            if self.proc.poll() is not None:
                sys.exit(f"standalone exited before {what}:\n{self.log()}")
            time.sleep(0.2)
        sys.exit(f"timed out waiting for {what}:\n{self.log()[-3000:]}")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        token = base64.b64encode(f"admin:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                sys.exit(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}")

    def trigger(self, dag_id: str, run_id: str) -> None:
        self.api("POST", f"/dags/{dag_id}/dagRuns", {"dag_run_id": run_id})

    def finished(self, dag_id: str) -> bool:
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        return all(r["state"] in ("success", "failed") for r in runs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def shoot(page: Page, out: Path, name: str) -> None:
    path = out / name
    page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def take(instance: Instance, chromium: str, out: Path) -> None:
    featured_runs = [f"nightly_{n}" for n in range(1, FEATURED_RUNS + 1)]
    for run_id in featured_runs:
        instance.trigger(FEATURED, run_id)
    for dag_id in OTHERS:
        instance.trigger(dag_id, "docs_run")
    for dag_id in (FEATURED, *OTHERS):
        instance.wait(f"the runs of {dag_id} to finish", lambda d=dag_id: instance.finished(d))
    last = featured_runs[-1]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=SIZE).new_page()
        page.goto(instance.url + "/login")
        page.locator('input[name="username"]').fill("admin")
        page.locator('input[name="password"]').fill(instance.password)
        page.locator('form:has(input[name="password"]) [type="submit"]').click()
        page.wait_for_url(instance.url + "/dags*")

        page.goto(instance.url + "/dags")
        page.locator(f'tr[data-dag-id="{FEATURED}"]').wait_for()
        shoot(page, out, "ui-dags.png")

        page.goto(f"{instance.url}/dags/{FEATURED}/grid")
        page.locator(f'table#grid th.run-cell[data-run-id="{last}"]').wait_for()
        shoot(page, out, "ui-grid.png")

        page.goto(f"{instance.url}/dags/{FEATURED}/graph")
        page.locator("svg#graph .node").first.wait_for()
        shoot(page, out, "ui-graph.png")

        # the run's facts and its Gantt chart, below the DAG's header
        page.goto(f"{instance.url}/dags/{FEATURED}/runs/{last}")
        page.locator("#gantt .gantt-bar").first.wait_for()
        page.locator("#run").evaluate("el => window.scrollTo(0, el.offsetTop - 16)")
        shoot(page, out, "ui-gantt.png")

        # the failed task: its state, details and the start of its log
        page.goto(f"{instance.url}/dags/{FEATURED}/runs/{last}/tasks/always_fails")
        page.locator("pre#log").filter(has_text="no luck").wait_for()
        page.locator("h2:has(#ti-state)").evaluate(
            "el => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 16)"
        )
        shoot(page, out, "ui-task.png")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--chromium", help="a Chromium binary (default: the system's)")
    args = parser.parse_args()
    chromium = find_chromium(args.chromium)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="slipstream-shots-") as home:
        instance = Instance(Path(home) / "home")
        try:
            take(instance, chromium, args.out)
        finally:
            instance.stop()


if __name__ == "__main__":
    main()
