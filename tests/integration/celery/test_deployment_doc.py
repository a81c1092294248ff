"""The multi-host layout of docs/deployment.md, run on one machine: every command the
section "Several machines" shows, in order, with this machine's PostgreSQL and Redis in
place of the hosts — then a DAG triggered through the REST API runs to success on it, and
its task's log is readable through the API."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from celery_brokers import Broker, celery_broker
from cryptography.fernet import Fernet

DOC = Path(__file__).resolve().parents[3] / "docs" / "deployment.md"
DEADLINE = 60.0

DAG = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import BashOperator

with DAG("from_the_docs", schedule=None, start_date=datetime(2024, 1, 1)):
    BashOperator(task_id="hello", bash_command="echo hello from a worker host") >> BashOperator(
        task_id="bye", bash_command="echo bye"
    )
"""


def documented_commands() -> list[str]:
    """The ``$ `` lines of the section's console blocks, comments stripped, in order."""
    text = DOC.read_text()
    start = text.index("<!-- the commands of this section are run")
    end = text.index("What to monitor:", start)
    commands = []
    for block in re.findall(r"```console\n(.*?)```", text[start:end], re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(re.sub(r"\s+#.*$", "", line[2:]).strip())
    return commands


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _api(
    port: int, path: str, auth: str, body: dict[str, Any] | None = None, method: str = "GET"
) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def _wait(what: str, check: Any, procs: list[subprocess.Popen[bytes]], logs: Path) -> Any:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        try:
            value = check()
        except (urllib.error.URLError, ConnectionError, OSError):
            value = None
        if value:
            return value
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited before {what}:\n{_tails(logs)}"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{_tails(logs)}")


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {f.name}\n{f.read_text()[-2000:]}" for f in sorted(logs.glob("*.log")))


def test_the_documented_layout_runs_a_dag(pg_url: str, tmp_path: Path) -> None:
    commands = documented_commands()
    exports = dict(
        c.removeprefix("export ").split("=", 1) for c in commands if c.startswith("export ")
    )
    assert set(exports) == {
        "SLIPSTREAM__DATABASE__URL",
        "SLIPSTREAM__CORE__EXECUTOR",
        "SLIPSTREAM__CELERY__BROKER_URL",
        "SLIPSTREAM__CORE__DAGS_FOLDER",
        "SLIPSTREAM__CORE__LOAD_EXAMPLES",
        "SLIPSTREAM__SECRETS__FERNET_KEY",
        "SLIPSTREAM__WEBSERVER__SECRET_KEY",
    }
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "from_the_docs.py").write_text(textwrap.dedent(DAG))
    logs = tmp_path / "logs"
    logs.mkdir()
    port = _free_port()
    with celery_broker("redis") as broker:
        env = _environment(exports, pg_url, broker, dags, tmp_path)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            _run_all(commands, env, port, procs, logs)
            auth = base64.b64encode(b"alice:a-long-password").decode()
            _wait(
                "a healthy scheduler, worker and DAG processor",
                lambda: (
                    (h := _api(port, "/health", auth))["status"] == "healthy"
                    and {"scheduler", "worker", "dag_processor"} <= set(h["components"])
                ),
                procs,
                logs,
            )
            _wait("the DAG", lambda: _api(port, "/dags", auth)["total_entries"] == 1, procs, logs)
            _api(port, "/dags/from_the_docs", auth, {"is_paused": False}, "PATCH")
            _api(port, "/dags/from_the_docs/dagRuns", auth, {"dag_run_id": "docs"}, "POST")
            state = _wait(
                "the run to end",
                lambda: (
                    (s := _api(port, "/dags/from_the_docs/dagRuns/docs", auth)["state"])
                    in ("success", "failed")
                    and s
                ),
                procs,
                logs,
            )
            assert state == "success", _tails(logs)
            log = _api(port, "/dags/from_the_docs/dagRuns/docs/taskInstances/hello/logs/1", auth)
            assert "hello from a worker host" in log["content"]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _environment(
    exports: dict[str, str], pg_url: str, broker: Broker, dags: Path, tmp_path: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM")}
    env.update(exports)
    # this machine in place of db.internal, broker.internal and the secret store
    env["SLIPSTREAM__DATABASE__URL"] = pg_url
    env["SLIPSTREAM__CELERY__BROKER_URL"] = broker.url
    env["SLIPSTREAM__CORE__DAGS_FOLDER"] = str(dags)
    env["SLIPSTREAM__SECRETS__FERNET_KEY"] = Fernet.generate_key().decode()
    env["SLIPSTREAM__WEBSERVER__SECRET_KEY"] = secrets.token_hex(32)
    env["SLIPSTREAM_HOME"] = str(tmp_path / "home")
    env["SLIPSTREAM__DAG_PROCESSOR__REFRESH_INTERVAL"] = "0.5"
    return env


def _run_all(
    commands: list[str],
    env: dict[str, str],
    port: int,
    procs: list[subprocess.Popen[bytes]],
    logs: Path,
) -> None:
    long_running = ("dag-processor", "scheduler", "celery worker", "webserver")
    for n, command in enumerate(c for c in commands if not c.startswith("export ")):
        assert command.startswith("slipstream "), command
        args = command.split()[1:]
        if args[0] == "webserver":
            args[args.index("--port") + 1] = str(port)
        argv = [sys.executable, "-m", "slipstream", *args]
        name = " ".join(args[:2])
        if any(name.startswith(k) for k in long_running):
            copies = 2 if args[0] == "scheduler" else 1  # "each scheduler host": two of them
            for i in range(copies):
                with (logs / f"{n:02d}-{args[0]}-{i}.log").open("wb") as out:
                    # the child keeps its own copy of the descriptor
                    procs.append(
                        subprocess.Popen(
                            argv,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
            continue
        stdin = "a-long-password\na-long-password\n" if args[:2] == ["users", "create"] else None
        done = subprocess.run(
            argv, env=env, input=stdin, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"`{command}` failed:\n{done.stdout}\n{done.stderr}"
