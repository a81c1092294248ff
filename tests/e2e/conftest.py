"""End-to-end fixtures: one real ``slipstream standalone`` (DAG processor, scheduler, worker
and web server) and one real headless Chromium for the whole session; each test gets its own
browser context (cookies) and its own DAG, so tests stay independent.

Chromium is the system's (no browser download): $SLIPSTREAM_TEST_CHROMIUM, else the Debian
or Ubuntu package's binary. A missing browser skips these tests on a laptop and fails them
under CI=true, as a missing PostgreSQL does.

Under pytest-xdist (``make test`` runs ``-n 2``) the fixtures are per process: a worker that
gets e2e tests starts its own standalone and browser. (``--dist loadgroup`` with an
``xdist_group`` mark would keep them in one worker, but it silently does nothing with pytest
9.2: pytest-dev/pytest-xdist#1386.)

Every test saves screenshots to test-artifacts/screenshots/<test>-<step>.png (and one named
``-failed`` when it fails), which CI keeps.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"

#: how long a page may take to show what a run does (ms, for Playwright's expectations)
RUN_TIMEOUT_MS = 30_000
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these Chromium keeps dialling out, which a closed network refuses noisily
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
#: the gate files the test DAGs' tasks wait for (see GATED)
GATES = ("e2e_live", "e2e_log", "e2e_clear")

#: a task that prints ``before``, waits (polling, up to a minute) for the file ``gate``,
#: then prints ``after``: tests open the gate when they have seen the task running
GATED = "{before}; for _ in $(seq 600); do [ -f {gate} ] && break; sleep 0.1; done; {after}"


def say(text: str) -> str:
    """A shell command printing ``text`` whose source does not hold ``text`` (the log also
    shows the command it runs): ``echo first_line | tr _ ' '``."""
    assert "_" not in text
    return f"echo {shlex.quote(text.replace(' ', '_'))} | tr _ ' '"


def gated_command(gate: Path, before: str, after: str) -> str:
    return GATED.format(before=say(before), gate=shlex.quote(str(gate)), after=say(after))


def _dag_files(gates: Path) -> dict[str, str]:
    """The test DAGs, one per test: ``file name -> source``."""
    header = textwrap.dedent(
        """\
        from datetime import datetime

        from slipstream import DAG
        from slipstream.operators import BashOperator

        """
    )

    def dag(dag_id: str, body: str) -> str:
        return (
            header
            + f'with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1), '
            + 'tags=["e2e"]) as dag:\n'
            + textwrap.indent(textwrap.dedent(body), "    ")
        )

    live = gated_command(gates / "e2e_live", "waiting for the gate", "the gate is open")
    tail = gated_command(gates / "e2e_log", "first line from tail", "second line from tail")
    check = f"{say('checking the marker')}; test -f {shlex.quote(str(gates / 'e2e_clear'))}"
    return {
        "e2e_live.py": dag(
            "e2e_live",
            f"""\
            wait = BashOperator(task_id="wait_gate", bash_command={live!r})
            after = BashOperator(task_id="after", bash_command="echo 'after the gate'")
            wait >> after
            """,
        ),
        "e2e_log.py": dag("e2e_log", f'BashOperator(task_id="tail", bash_command={tail!r})\n'),
        "e2e_clear.py": dag(
            "e2e_clear", f'BashOperator(task_id="check", bash_command={check!r}, retries=0)\n'
        ),
        "e2e_viewer.py": dag(
            "e2e_viewer", 'BashOperator(task_id="hello", bash_command="echo hello")\n'
        ),
    }


# --- the browser ---------------------------------------------------------------------


def find_chromium() -> str | None:
    """The Chromium to drive: $SLIPSTREAM_TEST_CHROMIUM, else the system package's."""
    explicit = os.environ.get("SLIPSTREAM_TEST_CHROMIUM")
    if explicit:
        return explicit
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def _service_missing(what: str, why: str) -> None:
    """Skip on a laptop, fail under CI=true (as tests/conftest.py does for PostgreSQL)."""
    message = f"{what} is not available: {why}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    how = (
        "install it with `sudo apt-get install chromium` (Debian; `chromium-browser` on "
        "Ubuntu) or point SLIPSTREAM_TEST_CHROMIUM at a Chromium binary"
    )
    if path is None:
        _service_missing(
            "Chromium", f"none at {' or '.join(CHROMIUM_CANDIDATES)} nor on PATH; {how}"
        )
    elif not os.access(path, os.X_OK):
        _service_missing("Chromium", f"SLIPSTREAM_TEST_CHROMIUM={path} is no executable; {how}")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    try:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
    except Exception as exc:
        _service_missing("Chromium", f"{chromium_path} did not start: {exc}")
        raise
    yield browser
    browser.close()


# --- the standalone process ----------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Standalone:
    """A running ``slipstream standalone`` with its web server at ``url``."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    home: Path
    gates: Path
    url: str
    output_file: Path
    admin_password: str = ""
    users: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``slipstream ARGS`` against this instance's home and database."""
        done = subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert done.returncode == 0, f"slipstream {' '.join(args)}: {done.stderr}"
        return done

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: str = "admin",
        password: str | None = None,
    ) -> tuple[int, Any, str]:
        """A REST API call with Basic auth: (status, decoded JSON or None, raw body)."""
        password = password if password is not None else self.users.get(user, "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Basic {token}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if body is not None else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw = exc.code, exc.read().decode()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        return status, data, raw

    def api_ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data, raw = self.api(method, path, body, **kw)
        assert 200 <= status < 300, f"{method} {path}: {status} {raw}"
        return data

    def unpause_and_trigger(self, dag_id: str, run_id: str) -> None:
        """Unpause ``dag_id`` and trigger run ``run_id`` through the REST API."""
        self.api_ok("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        self.api_ok("POST", f"/dags/{dag_id}/dagRuns", {"dag_run_id": run_id})

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Poll ``check`` until it returns something true."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(f"standalone exited before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.1)

    def open_gate(self, name: str) -> None:
        (self.gates / name).touch()

    def open_all_gates(self) -> None:
        """Let every waiting task finish (at the end, so that nothing holds the stop up)."""
        for name in GATES:
            self.open_gate(name)


def _start(tmp: Path) -> Standalone:
    home = tmp / "home"
    dags = tmp / "dags"
    gates = tmp / "gates"
    for folder in (home, dags, gates):
        folder.mkdir()
    for name, source in _dag_files(gates).items():
        (dags / name).write_text(source)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM")}
    env.update(
        {
            "SLIPSTREAM_HOME": str(home),
            "SLIPSTREAM__DATABASE__URL": f"sqlite:///{home / 'slipstream.db'}",
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
            "SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION": "true",
            "SLIPSTREAM__WEBSERVER__REFRESH_INTERVAL": "0.5",
            "SLIPSTREAM__DAG_PROCESSOR__REFRESH_INTERVAL": "0.5",
            "SLIPSTREAM__WORKER__HEARTBEAT_INTERVAL": "0.5",
            "SLIPSTREAM__WORKER__SHUTDOWN_TIMEOUT": "10",
            "PYTHONUNBUFFERED": "1",
        }
    )
    output_file = tmp / "standalone.out"
    with output_file.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slipstream", "standalone", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a terminal gives it
        )
    running = Standalone(
        proc=proc,
        env=env,
        home=home,
        gates=gates,
        url=f"http://127.0.0.1:{port}",
        output_file=output_file,
    )
    try:
        running.wait_for(
            "the line 'slipstream is ready'",
            lambda: "slipstream is ready" in running.output,
            timeout=STARTUP_TIMEOUT,
        )
        user, _, password = (
            (home / "standalone_admin_password.txt").read_text().strip().partition(":")
        )
        assert user == "admin" and password, "standalone wrote no admin password"
    except BaseException:
        _stop(running)
        raise
    running.admin_password = password
    running.users["admin"] = password
    return running


def _stop(running: Standalone) -> None:
    """Ctrl-C, as from a terminal; killed if it has not stopped after STOP_TIMEOUT."""
    proc = running.proc
    running.open_all_gates()
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    running = _start(tmp_path_factory.mktemp("e2e"))
    try:
        yield running
    finally:
        _stop(running)
    assert running.proc.returncode == 0, f"standalone did not stop cleanly:\n{running.output}"


# --- pages -----------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@dataclass
class UI:
    """One test's browser context, with its screenshots named after the test."""

    context: BrowserContext
    page: Page
    base_url: str
    test_name: str
    page_errors: list[str]

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str) -> None:
        self.page.goto(self.url(path))

    def shot(self, step: str, page: Page | None = None) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test_name}-{step}.png"
        (page or self.page).screenshot(path=str(path), full_page=True)
        return path

    def mark_page(self) -> None:
        """Set a marker in the page's JS world: it survives everything but a (re)load."""
        self.page.evaluate("window.__e2eMarker = 'still-here'")

    def assert_not_reloaded(self) -> None:
        marker = self.page.evaluate("window.__e2eMarker")
        assert marker == "still-here", "the page was reloaded (its JS marker is gone)"

    def csrf_token(self) -> str:
        token = self.page.locator('meta[name="csrf-token"]').get_attribute("content")
        assert token, "the page carries no CSRF token"
        return token


def login(page: Page, base_url: str, username: str, password: str) -> None:
    """Log in through the login form."""
    page.goto(base_url + "/login")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(password)
    page.locator('form:has(input[name="password"]) [type="submit"]').click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def _test_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)


class Browsing:
    """The browser contexts one test opens; each is closed (after a ``-failed`` screenshot
    when the test failed) and checked for uncaught script errors at the end of the test."""

    def __init__(self, request: pytest.FixtureRequest, browser: Browser, url: str) -> None:
        self.request = request
        self.browser = browser
        self.url = url
        self.opened: list[UI] = []

    def open(self, storage_state: Any = None, name: str = "") -> UI:
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 800}, storage_state=storage_state
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        test_name = _test_name(self.request) + (f"-{name}" if name else "")
        ui = UI(context, page, self.url, test_name, errors)
        self.opened.append(ui)
        return ui

    def login_as(self, username: str, password: str) -> UI:
        """A new context logged in as ``username`` through the login form."""
        ui = self.open(name=username)
        login(ui.page, self.url, username, password)
        return ui

    def close(self) -> None:
        failed = self.request.node.stash.get(_FAILED, False)
        errors: list[str] = []
        for ui in self.opened:
            if failed:
                ui.shot("failed")
            errors += ui.page_errors
            ui.context.close()
        assert not errors, f"uncaught errors in the pages' scripts: {errors}"


@pytest.fixture(scope="session")
def admin_state(browser: Browser, standalone: Standalone) -> Any:
    """The admin's logged-in cookies, from one login through the form."""
    context = browser.new_context()
    try:
        page = context.new_page()
        login(page, standalone.url, "admin", standalone.admin_password)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def browsing(
    request: pytest.FixtureRequest, browser: Browser, standalone: Standalone
) -> Iterator[Browsing]:
    opened = Browsing(request, browser, standalone.url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def ui(browsing: Browsing, admin_state: Any) -> UI:
    """A browser context logged in as the admin."""
    return browsing.open(admin_state)


@pytest.fixture
def anonymous_ui(browsing: Browsing) -> UI:
    """A browser context with no login."""
    return browsing.open()
