"""Fixtures for the REST API: a parsed DAG, runs in known states, and a client that calls
/api/v1 as any role and checks the status.

Runs are triggered through the API itself; task instances are put in given states with
the store's own state functions (as a worker would), so each test reads or changes real
rows through the endpoint it is about.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from slipstream.clock import utcnow
from slipstream.roles import Role
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import transaction
from slipstream.store.task_instances import TIKey
from slipstream.task_logs import try_log_path

from ..conftest import WebEnv, make_web_env

#: extract >> transform >> [load, transform_report] (an id that "transform" starts: clearing
#: "transform" must not take it); a validated param; docs and tags
DEMO_DAG = """
from datetime import datetime

from slipstream.sdk import DAG, Param
from slipstream.sdk.operators.bash import BashOperator

with DAG(
    "demo",
    start_date=datetime(2024, 1, 1),
    schedule=None,
    tags=["api", "demo"],
    doc_md="Demo **DAG** for the API tests.",
    params={"count": Param(5, type="integer", minimum=1, description="how many")},
) as dag:
    extract = BashOperator(task_id="extract", bash_command="echo extract", retries=2)
    transform = BashOperator(task_id="transform", bash_command="echo transform", pool="etl")
    load = BashOperator(task_id="load", bash_command="echo load")
    report = BashOperator(task_id="transform_report", bash_command="echo report")
    extract >> transform >> [load, report]
"""

_S = TaskInstanceState


@dataclass
class Api:
    """Calls /api/v1 on one app as a given role (Basic auth) and checks the status."""

    web: WebEnv
    client: FlaskClient

    def call(
        self,
        method: str,
        path: str,
        *,
        role: Role | None = Role.ADMIN,
        expect: int | None = 200,
        **kwargs: Any,
    ) -> TestResponse:
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers.update(self.web.api_headers(role))
        response = self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)
        assert response.status_code < 500, response.get_data(as_text=True)
        if expect is not None:
            assert response.status_code == expect, response.get_data(as_text=True)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs).json

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.call("POST", path, json=body, **kwargs).json

    def patch(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.call("PATCH", path, json=body, **kwargs).json

    def error(self, method: str, path: str, status: int, **kwargs: Any) -> str:
        """Call expecting the error ``status``; returns its one-sentence detail."""
        body = self.call(method, path, expect=status, **kwargs).json
        assert body is not None and body["status"] == status, body
        assert body["detail"] and "Traceback" not in body["detail"], body
        return str(body["detail"])

    # -- fixture data ---------------------------------------------------------------------
    def trigger(self, run_id: str, *, role: Role = Role.ADMIN, **body: Any) -> dict[str, Any]:
        """A run of the demo DAG, triggered through the API by ``role``'s user."""
        run: dict[str, Any] = self.post(
            "/dags/demo/dagRuns", {"dag_run_id": run_id, **body}, role=role
        )
        return run

    def set_run_state(self, run_id: str, state: DagRunState, dag_id: str = "demo") -> None:
        with transaction(self.web.factory) as session:
            run_store.set_dag_run_state(session, dag_id, run_id, state, utcnow())

    def run_try(
        self,
        run_id: str,
        task_id: str,
        state: TaskInstanceState,
        *,
        log: str | bytes | None = None,
        xcoms: dict[str, str] | None = None,
        dag_id: str = "demo",
    ) -> int:
        """One try of ``task_id`` as a worker runs it: started (running), its log written,
        then ended in ``state`` unless that is running. Returns the try number."""
        key = TIKey(dag_id, run_id, task_id)
        now = utcnow()
        with transaction(self.web.factory) as session:
            try_number = ti_store.start_try(
                session,
                key,
                expected=set(TaskInstanceState),
                now=now,
                hostname="test-host",
                pid=4242,
            )
            assert try_number is not None
            if state != _S.RUNNING:
                assert ti_store.finish_try(
                    session, key, try_number=try_number, state=state, now=now, xcoms=xcoms
                )
        if log is not None:
            path = try_log_path(self.web.config.log_folder, dag_id, run_id, task_id, try_number)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(log.encode() if isinstance(log, str) else log)
        return try_number

    def decide(self, run_id: str, task_id: str, state: TaskInstanceState) -> None:
        """Set a task instance that never ran to ``state``, as the scheduler decides
        upstream_failed or skipped."""
        with transaction(self.web.factory) as session:
            assert ti_store.set_state(
                session,
                TIKey("demo", run_id, task_id),
                expected={_S.NONE},
                new=state,
                now=utcnow(),
            )

    def states(self, run_id: str, dag_id: str = "demo") -> dict[str, str]:
        body = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}


def _api_for(web: WebEnv) -> Iterator[Api]:
    web.write_dag("demo.py", DEMO_DAG)
    web.parse()
    try:
        yield Api(web, web.client())
    finally:
        # close the pool's connections now, not when the garbage collector finds them
        web.factory.kw["bind"].dispose()


@pytest.fixture
def api(web: WebEnv) -> Iterator[Api]:
    """The demo DAG parsed, on SQLite."""
    yield from _api_for(web)


@pytest.fixture
def api_any_db(web_any_db: WebEnv) -> Iterator[Api]:
    """The demo DAG parsed, once on SQLite and once on PostgreSQL."""
    yield from _api_for(web_any_db)


# --- real scheduler and worker processes --------------------------------------------------

#: short heartbeats, so a try taken away is noticed within a test's patience
CLUSTER_ENV = {
    "SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION": "false",
    "SLIPSTREAM__SCHEDULER__TASK_HEARTBEAT_TIMEOUT": "3",
    "SLIPSTREAM__WORKER__HEARTBEAT_INTERVAL": "0.3",
    "SLIPSTREAM__SCHEDULER__SWEEP_INTERVAL": "2",
    "SLIPSTREAM__CORE__KILLED_TASK_CLEANUP_TIME": "2",
}


@dataclass
class Processes:
    """Components started as subprocesses (``python -m slipstream <component>``)."""

    home: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]]

    def start(self, component: str) -> subprocess.Popen[bytes]:
        with open(self.home / f"{component}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "slipstream", component],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}"
            for p in sorted(self.home.glob("*.log"))
        )

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                pytest.fail(f"a component exited with {proc.returncode}:\n{self.logs()}")


@pytest.fixture
def cluster_web(home: Path, password_hashes: dict[Role, str]) -> Iterator[tuple[Api, Processes]]:
    """The app on SQLite, plus a way to start a real scheduler and worker on its database;
    whatever was started is killed at the end."""
    db_url = f"sqlite:///{home / 'slipstream.db'}"
    web = make_web_env(home, db_url, password_hashes, **CLUSTER_ENV)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM__")}
    env.update(
        {
            "SLIPSTREAM_HOME": str(home),
            "SLIPSTREAM__DATABASE__URL": db_url,
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
            **CLUSTER_ENV,
        }
    )
    procs = Processes(home, env, [])
    try:
        yield Api(web, web.client()), procs
    finally:
        web.factory.kw["bind"].dispose()
        for proc in procs.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(what: str, check: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    """Poll ``check`` (cheaply: each call reads the database or /proc) until it is truthy."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")
