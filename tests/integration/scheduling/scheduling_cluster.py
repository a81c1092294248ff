"""Real scheduler and worker processes over a real database (SQLite and PostgreSQL).

:class:`Cluster` starts ``slipstream scheduler`` and ``slipstream worker`` as subprocesses
with short heartbeat settings, triggers runs through the service layer, and waits on the
database for outcomes — never on sleeps of a guessed length.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.dag_processor import DagProcessor
from slipstream.service.runs import trigger_dag
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import DagRun, TaskInstance, TaskInstanceHistory
from slipstream.store.schema import migrate

#: generous: CI machines are slow and shared; a test waits on a condition, not this long
DEADLINE = 60.0


class Cluster:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.dags_folder = home / "dags"
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._config: Config | None = None
        self._factory: sessionmaker[Session] | None = None

    # -- setup ------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.env)
        return self._config

    @property
    def factory(self) -> sessionmaker[Session]:
        if self._factory is None:
            engine = make_engine(self.config)
            migrate(engine)
            self._factory = session_factory(engine)
        return self._factory

    def write_dag(self, name: str, source: str) -> Path:
        path = self.dags_folder / name
        path.write_text(textwrap.dedent(source))
        return path

    def parse(self) -> None:
        results = DagProcessor(self.config, self.factory).process_folder()
        errors = [r.error for r in results if r.error]
        assert not errors, errors

    def start(self, component: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.home / f"{component}-{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "slipstream", component, *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def scheduler(self) -> subprocess.Popen[bytes]:
        return self.start("scheduler")

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        return self.start("worker", *args)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}"
            for p in sorted(self.home.glob("*.log"))
        )

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        """What one component started by :meth:`start` has written so far."""
        component = str(proc.args[3])  # type: ignore[index]
        path = self.home / f"{component}-{self.procs.index(proc)}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # -- acting -------------------------------------------------------------------------
    def trigger(self, dag_id: str, **kwargs: Any) -> str:
        run = trigger_dag(
            self.factory,
            dag_id,
            now=datetime.now(UTC),
            database_url=self.config.database_url,
            **kwargs,
        )
        return run.run_id

    # -- observing ------------------------------------------------------------------------
    def wait_for(
        self, what: str, check: Callable[[Session], Any], deadline: float = DEADLINE
    ) -> Any:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with transaction(self.factory) as session:
                value = check(session)
            if value:
                return value
            for proc in self.procs:
                if proc.poll() not in (None, 0, -signal.SIGKILL, -signal.SIGTERM, -signal.SIGSTOP):
                    pytest.fail(
                        f"a component died with {proc.returncode} while waiting for {what}:\n{self.logs()}"
                    )
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}:\n{self.logs()}")

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        with transaction(self.factory) as session:
            run = session.scalar(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            )
            return run.state if run else None

    def wait_run(self, dag_id: str, run_id: str, deadline: float = DEADLINE) -> str:
        def finished(session: Session) -> str | None:
            run = session.scalar(
                select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            )
            return run.state if run is not None and run.state in ("success", "failed") else None

        state: str = self.wait_for(f"run {dag_id}/{run_id} to finish", finished, deadline)
        return state

    def tis(self, dag_id: str, run_id: str) -> dict[str, TaskInstance]:
        with transaction(self.factory) as session:
            rows = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
                )
            )
            return {row.task_id: row for row in rows}

    def ti(self, dag_id: str, run_id: str, task_id: str) -> TaskInstance | None:
        return self.tis(dag_id, run_id).get(task_id)

    def wait_ti(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        check: Callable[[TaskInstance], bool],
        what: str,
        deadline: float = DEADLINE,
    ) -> TaskInstance:
        """Wait until ``check`` holds for one task instance; returns the row it held for."""

        def found(session: Session) -> TaskInstance | None:
            row = session.scalar(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id == task_id,
                )
            )
            return row if row is not None and check(row) else None

        row: TaskInstance = self.wait_for(f"{dag_id}/{run_id}/{task_id} {what}", found, deadline)
        return row

    def history(self, dag_id: str, run_id: str) -> list[TaskInstanceHistory]:
        with transaction(self.factory) as session:
            return list(
                session.scalars(
                    select(TaskInstanceHistory)
                    .where(
                        TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == run_id
                    )
                    .order_by(TaskInstanceHistory.task_id, TaskInstanceHistory.try_number)
                )
            )


def overlapping(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best
