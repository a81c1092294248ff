"""Several schedulers at once: on PostgreSQL they share the work through row locks and a
critical section for queueing; on SQLite a second one refuses to start. Also: wake-ups
across hosts over LISTEN/NOTIFY, and tries re-sent when they stay queued too long.

Real processes on a real database: tasks write a ledger line per execution (a file opened
with O_APPEND, outside slipstream's tables), and the tests count executions and overlaps
from it.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scheduling_cluster import DEADLINE, Cluster, overlapping
from sqlalchemy import create_engine, text
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from slipstream.errors import DatabaseError
from slipstream.executors.base import TaskEvent, Workload
from slipstream.executors.local import LocalExecutor, notify_scheduler
from slipstream.executors.wakeup import WORKER, WakeListener, WakeSender, wake_folder
from slipstream.scheduler import upkeep
from slipstream.scheduler.scheduler import Scheduler
from slipstream.service.pools import set_pool
from slipstream.store import queue as queue_store
from slipstream.store import scheduling
from slipstream.store.db import transaction
from slipstream.store.models import Job
from slipstream.store.queue import TryRef
from slipstream.store.resend import QueuedTry

on_postgres = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
on_sqlite = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

#: 12 tasks a run: begin → 10 in parallel (6 of them in the 3-slot pool "tight") → end;
#: each execution appends "run task try pool start end" to the ledger when it ends.
FANOUT = """
import os
import time
from datetime import datetime
from slipstream import DAG
from slipstream.operators import PythonOperator

LEDGER = {ledger!r}


def record(pool, **context):
    start = time.time()
    time.sleep({seconds})
    ti = context["ti"]
    line = f"{{context['run_id']}} {{ti.task_id}} {{ti.try_number}} {{pool}} {{start!r}} {{time.time()!r}}\\n"
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=4) as dag:
    begin = PythonOperator(task_id="begin", python_callable=record, op_kwargs={{"pool": "-"}})
    end = PythonOperator(task_id="end", python_callable=record, op_kwargs={{"pool": "-"}})
    for i in range(10):
        pool = "tight" if i < 6 else "default_pool"
        middle = PythonOperator(
            task_id=f"m{{i}}", python_callable=record, op_kwargs={{"pool": pool}}, pool=pool
        )
        begin >> middle >> end
"""


def _ledger(path: Path) -> list[tuple[str, str, int, str, float, float]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        run_id, task_id, try_number, pool, start, end = line.split()
        rows.append((run_id, task_id, int(try_number), pool, float(start), float(end)))
    return rows


def _exactly_once(ledger: Sequence[tuple[str, str, int, str, float, float]]) -> None:
    executions = Counter((run, task, try_number) for run, task, try_number, *_ in ledger)
    twice = {key: n for key, n in executions.items() if n != 1}
    assert not twice, f"executed more than once: {twice}"


def _all_success_once(cluster: Cluster, dag_id: str, run_ids: list[str], tasks: int) -> None:
    for run_id in run_ids:
        tis = cluster.tis(dag_id, run_id)
        assert len(tis) == tasks
        assert {(ti.state, ti.try_number) for ti in tis.values()} == {("success", 1)}, run_id


def _max_concurrent(intervals: list[tuple[float, float]]) -> int:
    as_dates = [
        (datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)) for s, e in intervals
    ]
    return overlapping(as_dates)


@on_postgres
def test_two_schedulers_and_two_workers_run_every_task_once_within_every_limit(
    cluster: Cluster, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    cluster.write_dag("fanout.py", FANOUT.format(ledger=str(ledger), seconds=0.1, dag_id="fanout"))
    cluster.parse()
    set_pool(cluster.factory, "tight", 3, actor="test")
    cluster.scheduler()
    cluster.scheduler()
    cluster.worker("-c", "4")
    cluster.worker("-c", "4")
    run_ids = [cluster.trigger("fanout", run_id=f"r{n}") for n in range(8)]

    for run_id in run_ids:
        assert cluster.wait_run("fanout", run_id) == "success"

    _all_success_once(cluster, "fanout", run_ids, tasks=12)
    rows = _ledger(ledger)
    _exactly_once(rows)
    assert len(rows) == 8 * 12
    # The pool's 3 slots held across both schedulers, as did each run's max_active_tasks.
    assert _max_concurrent([(s, e) for _, _, _, pool, s, e in rows if pool == "tight"]) <= 3
    for run_id in run_ids:
        assert _max_concurrent([(s, e) for run, *_, s, e in rows if run == run_id]) <= 4
    # The database's view agrees: from claim to end (within the slot's true hold, from
    # queueing to the end's commit), never more than 3 tries of the pool at once.
    tight = [
        (ti.start_date, ti.end_date)
        for run_id in run_ids
        for ti in cluster.tis("fanout", run_id).values()
        if ti.pool == "tight"
    ]
    assert len(tight) == 8 * 6 and overlapping(tight) <= 3
    with transaction(cluster.factory) as session:
        schedulers = session.scalars(sql_select(Job).where(Job.job_type == "scheduler")).all()
    assert len({job.pid for job in schedulers if job.state == "running"}) == 2


@on_postgres
def test_runs_complete_under_one_scheduler_when_the_other_is_killed(
    cluster: Cluster, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    cluster.write_dag("fanout.py", FANOUT.format(ledger=str(ledger), seconds=0.2, dag_id="fanout"))
    cluster.parse()
    set_pool(cluster.factory, "tight", 3, actor="test")
    doomed = cluster.scheduler()
    cluster.scheduler()
    cluster.worker("-c", "4")
    run_ids = [cluster.trigger("fanout", run_id=f"k{n}") for n in range(3)]
    cluster.wait_for("a few tasks to end", lambda _: len(_ledger(ledger)) >= 4)

    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert len(_ledger(ledger)) < 3 * 12, "the runs ended before the kill: nothing was tested"

    for run_id in run_ids:
        assert cluster.wait_run("fanout", run_id) == "success"
    _all_success_once(cluster, "fanout", run_ids, tasks=12)
    rows = _ledger(ledger)
    _exactly_once(rows)
    assert len(rows) == 3 * 12
    assert _max_concurrent([(s, e) for _, _, _, pool, s, e in rows if pool == "tight"]) <= 3


def _live_schedulers(session: Session) -> list[int]:
    rows = session.scalars(
        sql_select(Job.pid).where(Job.job_type == "scheduler", Job.state == "running")
    )
    return list(rows)


@on_sqlite
def test_a_second_scheduler_on_sqlite_refuses_and_a_crashed_ones_successor_starts(
    cluster: Cluster,
) -> None:
    first = cluster.scheduler()
    cluster.wait_for("the first scheduler to register", lambda s: first.pid in _live_schedulers(s))

    second = subprocess.run(
        [sys.executable, "-m", "slipstream", "scheduler"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert second.returncode == 1, second
    assert second.stderr.strip() == (
        f"Error: another scheduler (pid {first.pid} on host {socket.gethostname()}) is running "
        "on this SQLite database; SQLite supports one scheduler — use PostgreSQL to run several"
    )
    assert "Traceback" not in second.stdout + second.stderr
    assert first.poll() is None

    os.killpg(first.pid, signal.SIGKILL)  # its row still says running, heartbeat fresh
    first.wait()
    third = cluster.scheduler()
    cluster.wait_for("the successor to register", lambda s: third.pid in _live_schedulers(s))
    assert third.poll() is None
    assert _live_schedulers_now(cluster) == [third.pid]  # the dead one's row is closed


def _live_schedulers_now(cluster: Cluster) -> list[int]:
    with transaction(cluster.factory) as session:
        return _live_schedulers(session)


# --- wake-ups across hosts ----------------------------------------------------------------


def _readable(fd: int, deadline: float) -> bool:
    ready, _, _ = select.select([fd], [], [], deadline)
    return bool(ready)


def _drain_until(listener: WakeListener, deadline: float) -> list[bytes]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if _readable(listener.fileno(), max(0.0, end - time.monotonic())):
            got = listener.drain()
            if got:
                return got
    return []


@pytest.fixture
def pg_listener(postgres_url: str) -> Iterator[WakeListener]:
    listener = WakeListener(wake_folder(postgres_url), WORKER, database_url=postgres_url)
    try:
        yield listener
    finally:
        listener.close()


@pytest.mark.postgres
def test_a_notify_wakes_a_listener_of_another_host_once_and_survives_a_lost_connection(
    postgres_url: str, pg_listener: WakeListener, tmp_path: Path
) -> None:
    # Another host: its own socket folder (so its own origin), the same database.
    elsewhere = WakeSender(tmp_path, database_url=postgres_url)
    here = WakeSender(wake_folder(postgres_url), database_url=postgres_url)
    try:
        elsewhere.wake(WORKER, b'{"from":"elsewhere"}')
        assert _drain_until(pg_listener, DEADLINE) == [b'{"from":"elsewhere"}']

        # From this machine the socket carries it; the notification is dropped as a double.
        here.wake(WORKER, b"local")
        assert _drain_until(pg_listener, DEADLINE) == [b"local"]
        assert not _readable(pg_listener.fileno(), 0.3) or pg_listener.drain() == []

        # The server drops the listening connection: the listener says so (a bare wake-up,
        # as whatever came meanwhile is lost), listens again, and hears the next one.
        engine = create_engine(postgres_url)
        try:
            with engine.begin() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'slipstream wake-ups: worker' "
                        "AND datname = current_database()"
                    )
                ).scalar()
        finally:
            engine.dispose()
        assert killed >= 1  # (a connection of an earlier test may still be closing)
        assert _drain_until(pg_listener, DEADLINE) == [b""]
        elsewhere.wake(WORKER, b"again")
        assert _drain_until(pg_listener, DEADLINE) == [b"again"]
    finally:
        elsewhere.close()
        here.close()


# --- the locks, one by one ----------------------------------------------------------------

ONE_TASK = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import BashOperator

with DAG("{dag_id}", schedule={schedule!r}, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    BashOperator(task_id="only", bash_command="true")
"""


@on_postgres
def test_each_lock_is_held_by_one_transaction_and_skipped_by_the_others(
    cluster: Cluster,
) -> None:
    cluster.write_dag("hourly.py", ONE_TASK.format(dag_id="hourly", schedule="@hourly"))
    cluster.write_dag("manual.py", ONE_TASK.format(dag_id="manual", schedule=None))
    cluster.parse()
    run_id = cluster.trigger("manual")
    now = datetime.now(UTC)
    first, second = cluster.factory(), cluster.factory()
    try:
        with first.begin(), second.begin():
            # The DAG due for a new run, and the DAG of a queued run.
            assert [d.dag_id for d in scheduling.due_dags(first, now, lock=True)] == ["hourly"]
            assert scheduling.due_dags(second, now, lock=True) == []
            assert [r.run_id for r, _ in scheduling.queued_runs(first, lock=True)] == [run_id]
            assert scheduling.queued_runs(second, lock=True) == []
            # The critical section of queueing.
            assert queue_store.enter_queueing_section(first)
            assert not queue_store.enter_queueing_section(second)
        with first.begin(), second.begin():
            assert queue_store.enter_queueing_section(second)  # released by the commit
            assert not queue_store.enter_queueing_section(first)
        with transaction(cluster.factory) as session:
            session.execute(
                text("UPDATE dag_run SET state = 'running' WHERE run_id = :r"), {"r": run_id}
            )
        with first.begin(), second.begin():
            key = [("manual", run_id)]
            assert [r.run_id for r in scheduling.running_runs(first, key, lock=True)] == [run_id]
            assert scheduling.running_runs(second, key, lock=True) == []
            assert scheduling.running_runs(second, None, lock=True) == []
    finally:
        first.close()
        second.close()


# --- re-sending what stays queued ---------------------------------------------------------


def _queued(
    ti_id: int, *, queued_at: datetime | None, sent_at: datetime | None, weight: int = 1
) -> QueuedTry:
    ref = TryRef(ti_id, "d", "r", f"t{ti_id}", -1, 1, "default", "default_pool", 1, weight)
    return QueuedTry(ref, queued_at, sent_at)


def test_due_for_resend_picks_what_was_last_sent_an_interval_ago_in_claim_order() -> None:
    now = datetime(2024, 1, 1, 12, tzinfo=UTC)
    ago = lambda s: now - timedelta(seconds=s)  # noqa: E731
    tries = [
        _queued(1, queued_at=ago(120), sent_at=ago(59)),  # re-sent recently: not yet
        _queued(2, queued_at=ago(90), sent_at=ago(90)),
        _queued(3, queued_at=ago(60), sent_at=ago(60)),  # exactly the interval: due
        _queued(4, queued_at=ago(70), sent_at=ago(70), weight=5),  # higher priority first
        _queued(5, queued_at=None, sent_at=None),  # never timed: due, last among equals
        _queued(6, queued_at=ago(10), sent_at=ago(10)),
    ]
    due = upkeep.due_for_resend(tries, now=now, after=60)
    assert [t.ref.ti_id for t in due] == [4, 2, 3, 5]
    assert upkeep.due_for_resend(tries, now=now, after=600) == [tries[4]]
    assert upkeep.due_for_resend([], now=now, after=60) == []


class _Recording(LocalExecutor):
    """The embedded executor, also noting every workload it is handed."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self.sent: list[Workload] = []

    def submit(self, workloads: Sequence[Workload]) -> None:
        self.sent.extend(workloads)
        super().submit(workloads)


@on_postgres
def test_a_try_left_queued_is_sent_again_once_per_interval_by_one_of_two_schedulers(
    cluster: Cluster,
) -> None:
    cluster.env["SLIPSTREAM__SCHEDULER__RESEND_QUEUED_AFTER"] = "60"
    cluster.write_dag("manual.py", ONE_TASK.format(dag_id="manual", schedule=None))
    cluster.parse()
    run_id = cluster.trigger("manual")
    url = cluster.config.database_url
    t0 = datetime.now(UTC)
    executors = [_Recording(url), _Recording(url)]
    schedulers = [
        Scheduler(cluster.config, cluster.factory, e, clock=lambda: t0) for e in executors
    ]
    for s in schedulers:
        s.start()
    try:
        at = lambda seconds: t0 + timedelta(seconds=seconds)  # noqa: E731
        schedulers[0].run_once(at(0))  # starts the run and queues the task: no worker runs
        only = Workload("manual", run_id, "only", try_number=1, priority_weight=1)
        assert executors[0].sent == [only]

        # Both schedulers pass at each moment; each checks for stuck tries when a quarter of
        # the interval has gone by since its last check (every step here is longer).
        resent_by = []
        for second in (16, 45, 61, 77, 100, 120, 136, 152):
            for s in schedulers:
                s.run_once(at(second))
            resent = executors[0].sent[1:] + executors[1].sent
            resent_by.append((second, len(resent)))
        # Re-sent at 61 (queued at 0) and at 136 (re-sent at 61): once per interval, by one.
        assert resent_by == [
            (16, 0), (45, 0), (61, 1), (77, 1), (100, 1), (120, 1), (136, 2), (152, 2),
        ]  # fmt: skip
        assert set(resent) == {only}
        ti = cluster.ti("manual", run_id, "only")
        assert ti is not None and ti.state == "queued" and ti.try_number == 1
        assert ti.queued_at == t0  # the claim order keeps the time it was queued
    finally:
        for s in schedulers:
            s.stop()


TWO_TASKS = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import BashOperator

with DAG("pair", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    BashOperator(task_id="a", bash_command="true") >> BashOperator(task_id="b", bash_command="true")
"""


@on_postgres
def test_a_scheduler_yields_to_a_user_holding_task_rows_instead_of_deadlocking(
    cluster: Cluster,
) -> None:
    """Marking a run holds its task instances, then waits for the run's row; an evaluating
    scheduler holds the run's row, then writes task instances. The scheduler gives up its
    wait first, well before PostgreSQL's deadlock check, and its next pass does the work."""
    cluster.write_dag("pair.py", TWO_TASKS)
    cluster.parse()
    run_id = cluster.trigger("pair")
    url = cluster.config.database_url
    scheduler = Scheduler(cluster.config, cluster.factory, LocalExecutor(url))
    scheduler.start()
    user = cluster.factory()
    try:
        scheduler.run_once(datetime.now(UTC))  # a is queued
        with transaction(cluster.factory) as session:
            session.execute(text("UPDATE task_instance SET state = 'success' WHERE task_id = 'a'"))
        with user.begin():
            user.execute(text("SELECT 1 FROM task_instance WHERE task_id = 'b' FOR UPDATE"))
            notify_scheduler(url, TaskEvent("pair", run_id))  # as the worker would
            began = time.monotonic()
            with pytest.raises(DatabaseError, match="lock timeout"):
                scheduler.run_once(datetime.now(UTC))  # evaluates the run: b must wait
            assert time.monotonic() - began < 1.0  # before any deadlock check
            # The run's row is free again: the user's action completes.
            user.execute(
                text("UPDATE dag_run SET updated_at = now() WHERE run_id = :r"), {"r": run_id}
            )
        notify_scheduler(url, TaskEvent("pair", run_id))
        scheduler.run_once(datetime.now(UTC))
        b = cluster.ti("pair", run_id, "b")
        assert b is not None and b.state == "queued"
    finally:
        user.close()
        scheduler.stop()
