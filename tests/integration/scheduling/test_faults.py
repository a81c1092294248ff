"""Faults through real processes: a worker killed or frozen mid-task, a scheduler killed
mid-run, a worker stopped with SIGTERM, a try taken away from a task that ignores SIGTERM.
Every try has at most one live owner, nothing runs twice, and every run still ends as it
should."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scheduling_cluster import DEADLINE, Cluster, overlapping
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from slipstream.service.clearing import clear_tasks
from slipstream.store.models import TaskInstance

#: A task whose first try is slow; every try leaves ``pid-N`` (its process id) when it starts
#: and ``done-N`` when it ends, N being its try number.
SLOW_FIRST_TRY = """
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from slipstream import DAG, task

FOLDER = Path({folder!r})

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task(retries=1, retry_delay=timedelta(seconds=0.2))
    def slow(**context):
        try_number = context["ti"].try_number
        (FOLDER / f"pid-{{try_number}}").write_text(str(os.getpid()))
        if try_number == 1:
            time.sleep({seconds})
        (FOLDER / f"done-{{try_number}}").write_text("done")

    slow()
"""


def _process_state(pid: int) -> str | None:
    """The state letter of ``pid`` (R, S, T, Z...), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    return _process_state(pid) not in (None, "Z", "X")


def _written(path: Path) -> bool:
    """The file exists and holds its whole content (the task writes it in one go)."""
    return path.exists() and path.read_text().strip() != ""


def _wait_until(what: str, check, deadline: float = DEADLINE) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _write_lock_free(cluster: Cluster, ti_id: int) -> bool:
    """True unless another connection holds the locks the scheduler needs to fail a try:
    SQLite's write lock, or on PostgreSQL the task instance's row."""
    url = cluster.config.database_url
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0.2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
    session = cluster.factory()
    try:
        session.execute(
            select(TaskInstance.id).where(TaskInstance.id == ti_id).with_for_update(nowait=True)
        )
        return True
    except DBAPIError:
        return False
    finally:
        session.rollback()
        session.close()


def _freeze(cluster: Cluster, proc: subprocess.Popen[bytes], ti_id: int) -> None:
    """SIGSTOP ``proc`` between two of its transactions: a process frozen inside one would
    hold its locks and freeze everyone else, which is a different fault from the one a test
    means to inject."""
    for _ in range(50):
        os.kill(proc.pid, signal.SIGSTOP)
        _wait_until("the worker to stop", lambda: _process_state(proc.pid) == "T", 10)
        if _write_lock_free(cluster, ti_id):
            return
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the worker was inside a transaction at every attempt to freeze it")


def test_killed_worker_try_is_retried_on_another_worker(cluster: Cluster, tmp_path: Path) -> None:
    cluster.write_dag(
        "slow.py", SLOW_FIRST_TRY.format(folder=str(tmp_path), dag_id="slow", seconds=60)
    )
    cluster.parse()
    cluster.scheduler()
    first = cluster.worker()
    run_id = cluster.trigger("slow")
    cluster.wait_ti("slow", run_id, "slow", lambda ti: ti.state == "running", "running")
    _wait_until("the first try's task to start", lambda: _written(tmp_path / "pid-1"))
    task_pid = int((tmp_path / "pid-1").read_text())
    assert _alive(task_pid)

    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    try:
        # The task process dies with its worker (parent-death signal), long before its sleep
        # ends: no orphan keeps running a try that is about to be handed to another worker.
        _wait_until(f"the orphan task process {task_pid} to exit", lambda: not _alive(task_pid), 10)
    finally:
        if _alive(task_pid):
            os.killpg(task_pid, signal.SIGKILL)  # its own session leader: its group is its own
    second = cluster.worker()

    assert cluster.wait_run("slow", run_id) == "success"
    ti = cluster.tis("slow", run_id)["slow"]
    assert (ti.state, ti.try_number, ti.pid) == ("success", 2, second.pid)
    history = cluster.history("slow", run_id)
    assert [(h.try_number, h.state) for h in history] == [(1, "up_for_retry"), (2, "success")]
    assert history[0].pid == first.pid and history[1].pid == second.pid
    assert "heartbeat" in (history[0].error or "")
    assert history[0].end_date <= history[1].start_date
    assert not (tmp_path / "done-1").exists()  # the first try was stopped, not finished
    assert (tmp_path / "done-2").exists()


def test_frozen_worker_late_result_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    cluster.write_dag(
        "stall.py", SLOW_FIRST_TRY.format(folder=str(tmp_path), dag_id="stall", seconds=2)
    )
    cluster.parse()
    cluster.scheduler()
    stale = cluster.worker()
    run_id = cluster.trigger("stall")
    running = cluster.wait_ti("stall", run_id, "slow", lambda ti: ti.state == "running", "running")
    _wait_until("the first try's task to start", lambda: _written(tmp_path / "pid-1"))

    _freeze(cluster, stale, running.id)
    try:
        fresh = cluster.worker()
        done = cluster.wait_ti(
            "stall",
            run_id,
            "slow",
            lambda ti: ti.try_number == 2 and ti.state == "success",
            "try 2 to succeed",
        )
        assert done.pid == fresh.pid
        # Meanwhile the frozen worker's child finished try 1: its result waits to be recorded.
        _wait_until("try 1's task to finish", (tmp_path / "done-1").exists, 10)
    finally:
        os.kill(stale.pid, signal.SIGCONT)

    def stale_gave_up() -> bool:
        log = cluster.log_of(stale)
        return "refused" in log or "taken away" in log

    _wait_until("the stale worker to give up try 1", stale_gave_up)
    assert stale.poll() is None  # it carries on serving
    assert cluster.wait_run("stall", run_id) == "success"
    ti = cluster.tis("stall", run_id)["slow"]
    assert (ti.state, ti.try_number, ti.pid) == ("success", 2, fresh.pid)
    history = cluster.history("stall", run_id)
    assert [(h.try_number, h.state) for h in history] == [(1, "up_for_retry"), (2, "success")]
    # The scheduler ended try 1 before try 2 began: no try ever had two live owners.
    assert history[0].end_date <= history[1].start_date
    assert "heartbeat" in (history[0].error or "")
    assert history[0].pid == stale.pid and history[1].pid == fresh.pid


CHAIN6 = """
import time
from datetime import datetime
from slipstream import DAG, chain, task

with DAG("chain6", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    def step(n):
        @task(task_id=f"t{n}")
        def run():
            time.sleep(0.3)
            return n

        return run()

    chain(*[step(n) for n in range(1, 7)])
"""


def test_scheduler_killed_mid_run_is_replaced_without_rerunning_anything(
    cluster: Cluster,
) -> None:
    cluster.write_dag("chain6.py", CHAIN6)
    cluster.parse()
    first = cluster.scheduler()
    cluster.worker()
    run_id = cluster.trigger("chain6")
    cluster.wait_ti("chain6", run_id, "t2", lambda ti: ti.state == "success", "success")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert cluster.run_state("chain6", run_id) == "running"
    cluster.scheduler()

    assert cluster.wait_run("chain6", run_id) == "success"
    tis = cluster.tis("chain6", run_id)
    order = [f"t{n}" for n in range(1, 7)]
    assert {t: (ti.state, ti.try_number) for t, ti in tis.items()} == dict.fromkeys(
        order, ("success", 1)
    )
    history = cluster.history("chain6", run_id)
    assert sorted((h.task_id, h.try_number) for h in history) == [(t, 1) for t in order]
    assert overlapping([(tis[t].start_date, tis[t].end_date) for t in order]) == 1
    for upstream, downstream in itertools.pairwise(order):
        assert tis[upstream].end_date <= tis[downstream].start_date


SLEEPER = """
import time
from datetime import datetime
from slipstream import DAG, task

with DAG("sleeper", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def nap(**context):
        time.sleep(2 if context["run_id"] == "first" else 0)
        return "rested"

    nap()
"""


def test_sigterm_lets_the_running_task_finish_and_claims_nothing_new(cluster: Cluster) -> None:
    cluster.write_dag("sleeper.py", SLEEPER)
    cluster.parse()
    cluster.scheduler()
    worker = cluster.worker()
    first_run = cluster.trigger("sleeper", run_id="first")
    cluster.wait_ti("sleeper", first_run, "nap", lambda ti: ti.state == "running", "running")

    worker.send_signal(signal.SIGTERM)
    _wait_until("the worker to start stopping", lambda: "stopping" in cluster.log_of(worker))
    second_run = cluster.trigger("sleeper", run_id="second")
    cluster.wait_ti("sleeper", second_run, "nap", lambda ti: ti.try_number == 1, "queued")

    assert worker.wait(timeout=DEADLINE) == 0
    exited = datetime.now(UTC)
    first = cluster.tis("sleeper", first_run)["nap"]
    assert (first.state, first.try_number, first.pid) == ("success", 1, worker.pid)
    assert first.end_date is not None and first.end_date <= exited
    # Nothing was claimed after the SIGTERM: the second run's try waits for a worker.
    second = cluster.tis("sleeper", second_run)["nap"]
    assert (second.state, second.try_number, second.pid) == ("queued", 1, None)
    assert cluster.run_state("sleeper", second_run) == "running"

    replacement = cluster.worker()
    assert cluster.wait_run("sleeper", second_run) == "success"
    second = cluster.tis("sleeper", second_run)["nap"]
    assert (second.state, second.try_number, second.pid) == ("success", 1, replacement.pid)
    assert [(h.try_number, h.state) for h in cluster.history("sleeper", first_run)] == [
        (1, "success")
    ]


def test_sigterm_past_shutdown_timeout_stops_the_task_and_hands_it_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.env["SLIPSTREAM__WORKER__SHUTDOWN_TIMEOUT"] = "1"
    cluster.write_dag(
        "slow.py", SLOW_FIRST_TRY.format(folder=str(tmp_path), dag_id="slow", seconds=60)
    )
    cluster.parse()
    cluster.scheduler()
    worker = cluster.worker()
    run_id = cluster.trigger("slow")
    _wait_until("the first try's task to start", lambda: _written(tmp_path / "pid-1"))
    task_pid = int((tmp_path / "pid-1").read_text())

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=DEADLINE) == 0
    assert not _alive(task_pid)  # stopped with its worker, not left running
    # The worker recorded the try's end before exiting (the retry may be queued already).
    [first] = cluster.history("slow", run_id)
    assert (first.try_number, first.state) == (1, "up_for_retry")
    assert "stopped before the task finished" in (first.error or "")

    replacement = cluster.worker()
    assert cluster.wait_run("slow", run_id) == "success"
    history = cluster.history("slow", run_id)
    assert [(h.try_number, h.state, h.pid) for h in history] == [
        (1, "up_for_retry", worker.pid),
        (2, "success", replacement.pid),
    ]
    assert not (tmp_path / "done-1").exists()


STUBBORN = """
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from slipstream import DAG, task

FOLDER = Path({folder!r})

with DAG("stubborn", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def deaf(**context):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        (FOLDER / f"pid-{{context['ti'].try_number}}").write_text(str(os.getpid()))
        time.sleep(60)

    deaf()
"""


def test_a_taken_away_try_that_ignores_sigterm_is_killed(cluster: Cluster, tmp_path: Path) -> None:
    if not cluster.config.database_url.startswith("sqlite"):
        pytest.skip("stopping a child is the same on every database")
    cluster.write_dag("stubborn.py", STUBBORN.format(folder=str(tmp_path)))
    cluster.parse()
    scheduler = cluster.scheduler()
    cluster.worker()
    run_id = cluster.trigger("stubborn")
    _wait_until("the task to start", lambda: _written(tmp_path / "pid-1"))
    task_pid = int((tmp_path / "pid-1").read_text())
    os.killpg(scheduler.pid, signal.SIGKILL)  # nothing may queue the cleared task again
    try:
        clear_tasks(
            cluster.factory,
            "stubborn",
            now=datetime.now(UTC),
            task_regex="^deaf$",
            run_id=run_id,
        )
        # The worker sees at its next heartbeat (0.5 s) that the try is no longer its own;
        # SIGTERM, then SIGKILL after killed_task_cleanup_time (2 s), must end it.
        _wait_until(f"the taken-away task {task_pid} to be killed", lambda: not _alive(task_pid), 6)
    finally:
        if _alive(task_pid):
            os.killpg(task_pid, signal.SIGKILL)
