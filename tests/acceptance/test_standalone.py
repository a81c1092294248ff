"""``slipstream standalone`` as a user runs it: one command, then DAGs triggered with the
real CLI, a DAG file added while it runs, a worker killed and restarted, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from slipstream.store.models import Dag, DagRun, Job

DEADLINE = 60.0

HELLO = """
from datetime import datetime
from slipstream import DAG, task

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def hello():
        return "hello from {dag_id}"

    @task
    def shout(text):
        print(text.upper())

    shout(hello())
"""


class Standalone:
    """A ``slipstream standalone`` process in a session of its own, with its output read as
    it comes."""

    def __init__(self, env: dict[str, str], home: Path, workers: int) -> None:
        self.env = env
        self.stderr = (home / "standalone.err").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slipstream", "standalone", "--workers", str(workers)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.factory = sessionmaker(bind=create_engine(env["SLIPSTREAM__DATABASE__URL"]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        err = Path(self.stderr.name).read_text(errors="replace")
        return "\n".join(self.lines) + "\n--- stderr\n" + err

    def wait_for(self, what: str, check: Callable[[], Any], deadline: float = DEADLINE) -> Any:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            value = check()
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(
                    f"standalone exited ({self.proc.returncode}) before {what}:\n{self.output}"
                )
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}:\n{self.output}")

    def query(self, fn: Callable[[Session], Any]) -> Any:
        with self.factory() as session:
            return fn(session)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )

    def trigger(self, dag_id: str, run_id: str) -> None:
        done = self.cli("dags", "trigger", dag_id, "--run-id", run_id)
        assert done.returncode == 0, done.stderr

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        return self.query(  # type: ignore[no-any-return]
            lambda s: s.scalar(
                select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            )
        )

    def wait_run(self, dag_id: str, run_id: str) -> str:
        state: str = self.wait_for(
            f"run {dag_id}/{run_id} to finish",
            lambda: (s := self.run_state(dag_id, run_id)) in ("success", "failed") and s,
        )
        return state

    def live_workers(self) -> list[Job]:
        """Worker jobs that say they run, whose process is a child of standalone and alive."""
        jobs = self.query(
            lambda s: list(
                s.scalars(select(Job).where(Job.job_type == "worker", Job.state == "running"))
            )
        )
        return [j for j in jobs if _stat(j.pid) is not None and _stat(j.pid)[1] == self.proc.pid]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()
        self.factory.kw["bind"].dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, parent pid, process group, session) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def _in_session(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[3] == sid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def standalone(tmp_path: Path, home: Path) -> Iterator[Standalone]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "hello.py").write_text(textwrap.dedent(HELLO.format(dag_id="hello")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM__")}
    env.update(
        {
            "SLIPSTREAM_HOME": str(home),
            "SLIPSTREAM__DATABASE__URL": f"sqlite:///{home / 'slipstream.db'}",
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
            "SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION": "false",
            "SLIPSTREAM__DAG_PROCESSOR__REFRESH_INTERVAL": "0.5",
            "SLIPSTREAM__WORKER__HEARTBEAT_INTERVAL": "0.5",
            "SLIPSTREAM__WEBSERVER__PORT": str(free_port()),
        }
    )
    home.mkdir(parents=True, exist_ok=True)
    running = Standalone(env, home, workers=2)
    try:
        yield running
    finally:
        running.close()


def test_standalone_runs_dags_picks_up_new_files_restarts_workers_and_stops_on_ctrl_c(
    standalone: Standalone,
) -> None:
    standalone.wait_for(
        "slipstream is ready", lambda: any("slipstream is ready" in x for x in standalone.lines)
    )
    workers = standalone.wait_for("two live workers", lambda: len(standalone.live_workers()) == 2)
    assert workers

    # The web server is up, and its first admin's password was printed once and kept in a
    # private file.
    home = Path(standalone.env["SLIPSTREAM_HOME"])
    secret = home / "standalone_admin_password.txt"
    assert secret.stat().st_mode & 0o777 == 0o600
    username, password = secret.read_text().strip().split(":", 1)
    assert username == "admin" and len(password) >= 16
    assert sum(password in line for line in standalone.lines) == 1
    base = f"http://127.0.0.1:{standalone.env['SLIPSTREAM__WEBSERVER__PORT']}"
    assert any(base in line for line in standalone.lines)
    with urllib.request.urlopen(f"{base}/api/v1/health", timeout=10) as answer:
        assert answer.status == 200

    standalone.trigger("hello", "first")
    assert standalone.wait_run("hello", "first") == "success"

    # A worker that dies is started again.
    victim = standalone.live_workers()[0]
    os.kill(victim.pid, signal.SIGKILL)
    standalone.wait_for(
        "a new worker in place of the killed one",
        lambda: (
            len(live := standalone.live_workers()) == 2 and victim.pid not in {j.pid for j in live}
        ),
    )

    # The DAG processor is live: a new file's DAG appears and runs.
    folder = Path(standalone.env["SLIPSTREAM__CORE__DAGS_FOLDER"])
    (folder / "later.py").write_text(textwrap.dedent(HELLO.format(dag_id="later")))
    standalone.wait_for(
        "the new DAG in the dag table",
        lambda: standalone.query(lambda s: s.get(Dag, "later")),
        deadline=30,
    )
    standalone.trigger("later", "added")
    assert standalone.wait_run("later", "added") == "success"

    # Ctrl-C reaches the whole process group, as from a terminal.
    os.killpg(standalone.proc.pid, signal.SIGINT)
    assert standalone.proc.wait(timeout=DEADLINE) == 0, standalone.output
    standalone._reader.join(timeout=5)
    assert "slipstream stopped" in standalone.lines, standalone.output
    assert _in_session(standalone.proc.pid) == []
    # Every component stopped cleanly: none is left saying it runs.
    left = standalone.query(
        lambda s: [
            (j.job_type, j.pid)
            for j in s.scalars(select(Job).where(Job.state == "running"))
            if j.pid != victim.pid
        ]
    )
    assert left == []
