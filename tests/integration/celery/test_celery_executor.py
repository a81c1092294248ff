"""The Celery executor through real processes: a scheduler (core.executor = celery) and
``slipstream celery worker`` processes on PostgreSQL, with real Redis and real RabbitMQ.

Tasks reach the Celery queue named after their ``queue``, and only a worker serving it runs
them; a Celery worker killed mid-task has its try retried on another one, and the message
the broker hands out again runs nothing; a try cleared while it runs is stopped by its pool
process and runs again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery_brokers import Broker, handled_messages, process_tree
from scheduling_cluster import DEADLINE, Cluster
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipstream.service.clearing import clear_tasks
from slipstream.store.models import Job

pytestmark = pytest.mark.postgres

ROUTED = """
from datetime import datetime
from slipstream import DAG, task

with DAG("routed", schedule=None, start_date=datetime(2024, 1, 1),
         default_args={{"queue": {default!r}}}) as dag:
    @task
    def extract():
        return 20

    @task(queue={etl!r})
    def transform(value):
        return value + 1

    @task
    def load(value):
        assert value == 21, value

    load(transform(extract()))
"""

#: try 1 sleeps (long enough to be killed), try 2 ends at once; each leaves pid-N and done-N
SLOW_FIRST_TRY = """
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from slipstream import DAG, task

FOLDER = Path({folder!r})

with DAG("slow", schedule=None, start_date=datetime(2024, 1, 1),
         default_args={{"queue": {queue!r}}}) as dag:
    @task(retries=1, retry_delay=timedelta(seconds=0.2))
    def slow(**context):
        try_number = context["ti"].try_number
        (FOLDER / f"pid-{{try_number}}").write_text(str(os.getpid()))
        if try_number == 1:
            time.sleep(60)
        (FOLDER / f"done-{{try_number}}").write_text("done")

    slow()
"""


def _wait_until(what: str, check: Callable[[], object], deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _job_of(cluster: Cluster, pid: int) -> Job:
    def registered(session: Session) -> Job | None:
        return session.scalar(select(Job).where(Job.job_type == "worker", Job.pid == pid))

    job: Job = cluster.wait_for(f"the celery worker {pid} to register", registered)
    return job


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_tasks_reach_only_workers_of_their_queue_and_the_run_succeeds(
    cluster: Cluster, broker: Broker
) -> None:
    default, etl = broker.queue("default"), broker.queue("etl")
    cluster.write_dag("routed.py", ROUTED.format(default=default, etl=etl))
    cluster.parse()
    cluster.scheduler()
    general = cluster.start("celery", "worker", "--queues", default, "--concurrency", "1")
    general_job = _job_of(cluster, general.pid)
    assert general_job.detail == f"celery:{default}"
    run_id = cluster.trigger("routed")

    # transform is queued, and its message waits in the etl queue: the worker serving only
    # the default queue never takes it.
    cluster.wait_ti("routed", run_id, "transform", lambda ti: ti.state == "queued", "queued")
    _wait_until("the etl message", lambda: broker.waiting(etl) == 1)
    assert cluster.ti("routed", run_id, "transform").state == "queued"  # type: ignore[union-attr]

    etl_worker = cluster.start("celery", "worker", "--queues", etl, "--concurrency", "1")
    etl_job = _job_of(cluster, etl_worker.pid)
    assert cluster.wait_run("routed", run_id) == "success", cluster.logs()

    tis = cluster.tis("routed", run_id)
    assert {t: (ti.state, ti.try_number, ti.queue) for t, ti in tis.items()} == {
        "extract": ("success", 1, default),
        "transform": ("success", 1, etl),
        "load": ("success", 1, default),
    }
    owners = {t: ti.worker_job_id for t, ti in tis.items()}
    assert owners == {"extract": general_job.id, "transform": etl_job.id, "load": general_job.id}
    assert handled_messages(cluster.log_of(general)) == 2
    assert handled_messages(cluster.log_of(etl_worker)) == 1
    assert broker.waiting(default) == 0 and broker.waiting(etl) == 0
    # Each try ran in a forked child with its own log, as under `slipstream worker`.
    logs = cluster.config.log_folder / "dag_id=routed" / f"run_id={run_id}"
    assert "Marking task as SUCCESS" in (logs / "task_id=transform" / "attempt=1.log").read_text()


def test_killed_celery_worker_try_is_retried_on_another_worker(
    cluster: Cluster, broker: Broker, tmp_path: Path
) -> None:
    queue = broker.queue("default")
    cluster.write_dag("slow.py", SLOW_FIRST_TRY.format(folder=str(tmp_path), queue=queue))
    cluster.parse()
    cluster.scheduler()
    first = cluster.start("celery", "worker", "--queues", queue, "--concurrency", "1")
    _job_of(cluster, first.pid)
    run_id = cluster.trigger("slow")
    cluster.wait_ti("slow", run_id, "slow", lambda ti: ti.state == "running", "running")
    _wait_until("try 1's task to start", lambda: (tmp_path / "pid-1").exists())
    _wait_until("try 1's pid", lambda: (tmp_path / "pid-1").read_text().strip())
    task_pid = int((tmp_path / "pid-1").read_text())
    first_processes = process_tree(first.pid)

    os.killpg(first.pid, signal.SIGKILL)  # the main process and its pool processes
    first.wait()
    try:
        # The task's own process group outlived the kill, but not its parent's death.
        _wait_until(f"the orphan task process {task_pid} to exit", lambda: not _alive(task_pid))
    finally:
        if _alive(task_pid):
            os.killpg(task_pid, signal.SIGKILL)
    second = cluster.start("celery", "worker", "--queues", queue, "--concurrency", "1")
    second_job = _job_of(cluster, second.pid)

    assert cluster.wait_run("slow", run_id) == "success", cluster.logs()
    ti = cluster.tis("slow", run_id)["slow"]
    assert (ti.state, ti.try_number, ti.worker_job_id) == ("success", 2, second_job.id)
    history = cluster.history("slow", run_id)
    assert [(h.try_number, h.state) for h in history] == [(1, "up_for_retry"), (2, "success")]
    assert history[0].pid in first_processes and history[0].pid != task_pid
    assert ti.pid in process_tree(second.pid)
    assert "heartbeat" in (history[0].error or "")
    assert history[0].end_date <= history[1].start_date
    assert not (tmp_path / "done-1").exists()  # try 1 was stopped, not finished
    assert (tmp_path / "done-2").exists()
    if broker.kind == "rabbitmq":
        # RabbitMQ hands the dead worker's unacknowledged message to the next one at once:
        # it names try 1, which is no longer queued, so it runs nothing.
        _wait_until(
            "the redelivered message", lambda: handled_messages(cluster.log_of(second)) == 2
        )
        assert "nothing to run for slow/" in cluster.log_of(second), cluster.logs()


@pytest.mark.parametrize("broker", ["redis"], indirect=True)  # the broker plays no part
def test_a_try_cleared_under_a_celery_worker_is_stopped_and_runs_again(
    cluster: Cluster, broker: Broker, tmp_path: Path
) -> None:
    queue = broker.queue("default")
    cluster.write_dag("slow.py", SLOW_FIRST_TRY.format(folder=str(tmp_path), queue=queue))
    cluster.parse()
    cluster.scheduler()
    worker = cluster.start("celery", "worker", "--queues", queue, "--concurrency", "1")
    job = _job_of(cluster, worker.pid)
    run_id = cluster.trigger("slow")
    _wait_until("try 1's task to start", lambda: (tmp_path / "pid-1").exists())
    _wait_until("try 1's pid", lambda: (tmp_path / "pid-1").read_text().strip())
    task_pid = int((tmp_path / "pid-1").read_text())

    clear_tasks(cluster.factory, "slow", now=datetime.now(UTC), run_id=run_id)
    try:
        # The pool process's next heartbeat of the try (0.5 s) finds it cleared: it stops it.
        _wait_until(f"the cleared task {task_pid} to stop", lambda: not _alive(task_pid), 10)
    finally:
        if _alive(task_pid):
            os.killpg(task_pid, signal.SIGKILL)
    assert cluster.wait_run("slow", run_id) == "success", cluster.logs()
    ti = cluster.tis("slow", run_id)["slow"]
    assert (ti.state, ti.try_number, ti.worker_job_id) == ("success", 2, job.id)
    assert not (tmp_path / "done-1").exists()
    assert (tmp_path / "done-2").exists()
    assert "discarded the result of slow/" in cluster.log_of(worker)
