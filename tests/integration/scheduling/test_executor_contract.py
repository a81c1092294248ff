"""The executor contract, for every executor implementation: what is submitted runs exactly
once on a real worker, its end comes back as an event, a duplicated workload runs nothing
twice, and a workload naming a try that is no longer the queued one runs nothing.

The scheduler is left out: the test queues the tries itself, as the scheduler does, and
plays the scheduler's side of the executor. Adding an implementation is one entry in
``FLAVORS``: how to make it, how to start a worker that serves it, and the broker it needs.
"""

from __future__ import annotations

import select as io_select
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery_brokers import BROKERS, Broker, celery_broker, handled_messages, process_tree
from scheduling_cluster import DEADLINE, Cluster
from sqlalchemy import select

from slipstream.config import Config
from slipstream.executors.base import Executor, TaskEvent, Workload
from slipstream.executors.celery import CeleryExecutor
from slipstream.executors.local import LocalExecutor
from slipstream.serialization import SerializedDag
from slipstream.states import DagRunState, DagRunType, TaskInstanceState
from slipstream.store import dags as dag_store
from slipstream.store import queue as queue_store
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import transaction
from slipstream.store.models import Job
from slipstream.store.queue import TryRef
from slipstream.store.task_instances import TIKey
from slipstream.task_logs import try_log_path

_S = TaskInstanceState


@dataclass(frozen=True)
class Flavor:
    """One executor implementation under test."""

    make: Callable[[Config], Executor]
    #: the command of a worker that serves this executor (``--queues`` follows)
    worker_command: tuple[str, ...] = ("worker",)
    #: the kind of broker it needs ("redis", "rabbitmq"): the test gets one of its own
    broker: str | None = None


FLAVORS = [
    pytest.param(Flavor(lambda config: LocalExecutor(config.database_url)), id="local"),
    *(
        pytest.param(Flavor(CeleryExecutor, ("celery", "worker"), broker=kind), id=f"celery-{kind}")
        for kind in BROKERS
    ),
]


@dataclass
class Served:
    """A flavor set up for one test: the queue its tasks use, and its broker if it has one."""

    flavor: Flavor
    cluster: Cluster
    queue: str
    broker: Broker | None = None

    def executor(self) -> Executor:
        return self.flavor.make(self.cluster.config)

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        return self.cluster.start(*self.flavor.worker_command, "--queues", self.queue, *args)

    def drain(self, messages: int) -> subprocess.Popen[bytes]:
        """Start a worker and return once it has dealt with everything submitted so far
        (``messages`` messages, for an executor with a broker)."""
        if self.broker is None:
            worker = self.worker("--burst")  # exits once nothing is queued
            assert worker.wait(timeout=DEADLINE) == 0, self.cluster.logs()
            return worker
        worker = self.worker()
        end = time.monotonic() + DEADLINE
        while handled_messages(self.cluster.log_of(worker)) < messages:
            assert worker.poll() is None, self.cluster.logs()
            assert time.monotonic() < end, (
                f"{messages} messages not handled:\n{self.cluster.logs()}"
            )
            time.sleep(0.05)
        assert handled_messages(self.cluster.log_of(worker)) == messages
        assert self.broker.waiting(self.queue) == 0  # every message taken and acknowledged
        return worker


@pytest.fixture(params=FLAVORS)
def served(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Served]:
    flavor: Flavor = request.param
    if flavor.broker is None:
        yield Served(flavor, cluster, "default")
        return
    with celery_broker(flavor.broker) as broker:
        cluster.env.update(broker.env())
        try:
            yield Served(flavor, cluster, broker.queue("contract"), broker)
        finally:
            cluster.stop_all()  # before the broker is cleaned up under the workers' feet


DAG_ID = "contract"
TASKS = ("a", "b", "c", "stale", "gone")

CONTRACT = """
from datetime import datetime
from pathlib import Path
from slipstream import DAG, task

COUNTS = Path({folder!r})

with DAG("contract", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    def counted(name):
        @task(task_id=name, queue={queue!r})
        def run(**context):
            with open(COUNTS / name, "a") as f:
                f.write(f"{{context['ti'].try_number}}\\n")
            return name

        return run()

    for name in {tasks!r}:
        counted(name)
"""


def _workload(ref: TryRef, try_number: int | None = None) -> Workload:
    return Workload(
        dag_id=ref.dag_id,
        run_id=ref.run_id,
        task_id=ref.task_id,
        try_number=ref.try_number if try_number is None else try_number,
        map_index=ref.map_index,
        queue=ref.queue,
        priority_weight=ref.priority_weight,
    )


def _start_run(cluster: Cluster, run_id: str, task_ids: Iterable[str]) -> dict[str, TryRef]:
    """A running DAG run whose ``task_ids`` are queued as try 1, as the scheduler leaves them;
    returns the queued tries by task id."""
    now = datetime.now(UTC)
    with transaction(cluster.factory) as session:
        version = dag_store.latest_version(session, DAG_ID)
        assert version is not None
        dag = SerializedDag.from_dict(version.data)
        run_store.create_dag_run(
            session,
            dag_id=DAG_ID,
            run_id=run_id,
            run_type=DagRunType.MANUAL.value,
            logical_date=now,
            data_interval=(now, now),
            run_after=now,
            conf={},
            tasks=run_store.task_specs(dag),
            now=now,
            state=DagRunState.RUNNING,
            dag_version_id=version.id,
        )
        for task_id in task_ids:
            key = TIKey(DAG_ID, run_id, task_id)
            assert ti_store.set_state(session, key, expected={_S.NONE}, new=_S.SCHEDULED, now=now)
        queued = {}
        for candidate in queue_store.scheduled(session, limit=100):
            if candidate.ref.run_id == run_id:
                ref = queue_store.queue_try(session, candidate.ref, now)
                assert ref is not None and ref.try_number == 1
                queued[ref.task_id] = ref
    return queued


def _requeue(cluster: Cluster, ref: TryRef) -> TryRef:
    """Send a queued try back and queue it again, as try + 1: a message naming the first
    try is now stale."""
    now = datetime.now(UTC)
    key = TIKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
    with transaction(cluster.factory) as session:
        assert ti_store.set_state(session, key, expected={_S.QUEUED}, new=_S.SCHEDULED, now=now)
        again = queue_store.queue_try(session, ref, now)
    assert again is not None and again.try_number == ref.try_number + 1
    return again


def _take_back(cluster: Cluster, ref: TryRef) -> None:
    """The queued try ends before any worker saw it (the run was marked, say)."""
    now = datetime.now(UTC)
    key = TIKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
    with transaction(cluster.factory) as session:
        assert ti_store.set_state(session, key, expected={_S.QUEUED}, new=_S.SKIPPED, now=now)


def _collect_events(
    executor: Executor, want: set[tuple[str, int]], deadline: float = DEADLINE
) -> list[TaskEvent]:
    """Events as the scheduler reads them (select on ``fileno()``, then ``events()``) until
    every (task id, try number) in ``want`` has ended."""
    found: list[TaskEvent] = []
    end = time.monotonic() + deadline
    while not want <= {(e.task_id, e.try_number) for e in found}:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no event for {sorted(want)}; got {found}")
        readable, _, _ = io_select.select([executor.fileno()], [], [], left)
        if readable:
            found.extend(executor.events())
    return found


def test_submitted_tries_run_exactly_once_and_report_their_end(
    cluster: Cluster, served: Served, tmp_path: Path
) -> None:
    source = CONTRACT.format(folder=str(tmp_path), tasks=TASKS, queue=served.queue)
    cluster.write_dag("contract.py", source)
    cluster.parse()
    executor = served.executor()
    executor.start()
    try:
        queued = _start_run(cluster, "r1", TASKS)
        stale = _requeue(cluster, queued["stale"])
        _take_back(cluster, queued["gone"])
        fresh = [_workload(queued[t]) for t in ("a", "b", "c")]
        batches = [
            fresh,
            [*fresh[:2], _workload(queued["stale"]), _workload(queued["gone"])],
            [_workload(stale), fresh[2]],
        ]
        for batch in batches:
            executor.submit(batch)

        served.drain(messages=sum(len(b) for b in batches))
        events = _collect_events(executor, {("a", 1), ("b", 1), ("c", 1), ("stale", 2)})
        events += executor.events()  # never blocks; anything late shows up here
    finally:
        executor.stop()

    tis = cluster.tis(DAG_ID, "r1")
    assert {t: (ti.state, ti.try_number) for t, ti in tis.items()} == {
        "a": ("success", 1),
        "b": ("success", 1),
        "c": ("success", 1),
        "stale": ("success", 2),
        "gone": ("skipped", 1),
    }
    history = [(h.task_id, h.try_number, h.state) for h in cluster.history(DAG_ID, "r1")]
    assert history == [
        ("a", 1, "success"),
        ("b", 1, "success"),
        ("c", 1, "success"),
        ("stale", 2, "success"),
    ]
    # What each task body did, counted outside the database: every try ran once, the
    # stale message's try never ran, and the taken-back one never started.
    runs = {t: (tmp_path / t).read_text() for t in TASKS if (tmp_path / t).exists()}
    assert runs == {"a": "1\n", "b": "1\n", "c": "1\n", "stale": "2\n"}
    log_folder = cluster.config.log_folder
    assert not try_log_path(log_folder, DAG_ID, "r1", "stale", 1).exists()
    assert not try_log_path(log_folder, DAG_ID, "r1", "gone", 1).exists()

    ended = sorted((e.dag_id, e.run_id, e.task_id, e.try_number, e.state) for e in events)
    assert ended == [
        (DAG_ID, "r1", "a", 1, "success"),
        (DAG_ID, "r1", "b", 1, "success"),
        (DAG_ID, "r1", "c", 1, "success"),
        (DAG_ID, "r1", "stale", 2, "success"),
    ]


def test_a_live_worker_picks_up_what_is_submitted(
    cluster: Cluster, served: Served, tmp_path: Path
) -> None:
    source = CONTRACT.format(folder=str(tmp_path), tasks=TASKS, queue=served.queue)
    cluster.write_dag("contract.py", source)
    cluster.parse()
    executor = served.executor()
    executor.start()
    try:
        worker = served.worker()
        cluster.wait_for(
            "the worker to start",
            lambda s: s.scalar(select(Job).where(Job.job_type == "worker", Job.pid == worker.pid)),
        )
        queued = _start_run(cluster, "r2", ("a", "b"))
        executor.submit([_workload(ref) for ref in queued.values()])
        events = _collect_events(executor, {("a", 1), ("b", 1)})
    finally:
        executor.stop()
    assert sorted((e.task_id, e.try_number, e.state) for e in events) == [
        ("a", 1, "success"),
        ("b", 1, "success"),
    ]
    tis = cluster.tis(DAG_ID, "r2")
    assert {t: ti.state for t, ti in tis.items()} == {
        "a": "success",
        "b": "success",
        "c": "none",
        "stale": "none",
        "gone": "none",
    }
    # Run by the worker started here: under its job, in it or one of its processes.
    with transaction(cluster.factory) as session:
        job = session.scalars(select(Job).where(Job.pid == worker.pid)).one()
    assert all(tis[t].worker_job_id == job.id for t in ("a", "b"))
    assert {tis[t].pid for t in ("a", "b")} <= set(process_tree(worker.pid))
