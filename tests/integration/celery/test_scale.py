"""Scale-out with the Celery executor, through real processes on PostgreSQL: two
``slipstream scheduler`` processes and several ``slipstream celery worker`` processes run
hundreds of task instances within every limit, and runs complete through a broker restart
(Redis and RabbitMQ) and through the loss of one of the schedulers.

Each task execution writes a start line and an end line to a ledger file (O_APPEND, outside
slipstream's tables): the tests count executions — every (run, task) exactly once — and
measure overlaps from it.

The restart tests restart a broker server of their own (a Redis, or a RabbitMQ node, on free
ports) rather than the machine's shared one: restarting that would drop the connections and
the queued messages of whatever test runs beside them under ``-n 2`` (and Redis would lose
the other tests' database locks).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest
from celery_brokers import Broker, _service_missing, celery_broker
from scheduling_cluster import DEADLINE, Cluster, overlapping
from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from slipstream.service.pools import set_pool
from slipstream.store.db import transaction
from slipstream.store.models import Job, TaskInstance, TaskLogChunk

pytestmark = pytest.mark.postgres

POOL, POOL_SLOTS = "four", 4
MAX_ACTIVE_TASKS = 5
BRANCHES, STEPS = 12, 4
TASKS = 2 + BRANCHES * STEPS  # begin, the branches, end: 50

#: begin >> 12 parallel branches of 4 chained steps >> end. The second step of every even
#: branch takes a slot of the pool (6 a run). Each execution appends to the ledger
#: "start|end run task try pid pooled time"; ``conf`` sets how long a task takes and a
#: file whose existence holds each task (but those named in "unheld") just after its start.
SCALE_DAG = """
import os
import time
from datetime import datetime
from slipstream import DAG
from slipstream.operators import PythonOperator

LEDGER = {ledger!r}


def note(line):
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record(pooled, **context):
    ti, conf = context["ti"], context["conf"]
    key = f"{{context['run_id']}} {{ti.task_id}} {{ti.try_number}} {{os.getpid()}} {{int(pooled)}}"
    note(f"start {{key}} {{time.time()!r}}\\n")
    hold = conf.get("hold") if ti.task_id not in conf.get("unheld", ()) else None
    until = time.monotonic() + 30
    while hold and os.path.exists(hold) and time.monotonic() < until:
        time.sleep(0.01)
    time.sleep(conf.get("pool_seconds" if pooled else "seconds", 0.0))
    note(f"end {{key}} {{time.time()!r}}\\n")


def step(task_id, pooled=False):
    extra = {{"pool": {pool!r}}} if pooled else {{}}
    return PythonOperator(
        task_id=task_id, python_callable=record, op_kwargs={{"pooled": pooled}}, **extra
    )


with DAG("scale", schedule=None, start_date=datetime(2024, 1, 1),
         max_active_tasks={max_active}, default_args={{"queue": {queue!r}}}) as dag:
    begin, end = step("begin"), step("end")
    for b in range({branches}):
        previous = begin
        for s in range({steps}):
            current = step(f"b{{b}}_{{s}}", pooled=(s == 1 and b % 2 == 0))
            previous >> current
            previous = current
        previous >> end
"""


@dataclass(frozen=True)
class Execution:
    run_id: str
    task_id: str
    try_number: int
    pid: int
    pooled: bool
    start: float
    end: float | None


def _ledger(path: Path) -> list[Execution]:
    """The executions the ledger shows, in start order; ``end`` None while one runs."""
    if not path.exists():
        return []
    started: dict[tuple[str, str, int, int], Execution] = {}
    ended: dict[tuple[str, str, int, int], float] = {}
    # (the last piece, without its newline, may be a line still being written)
    for line in path.read_text().split("\n")[:-1]:
        what, run_id, task_id, try_number, pid, pooled, at = line.split()
        key = (run_id, task_id, int(try_number), int(pid))
        if what == "start":
            assert key not in started, f"started twice in one process: {line}"
            started[key] = Execution(*key, pooled == "1", float(at), None)
        else:
            ended[key] = float(at)
    assert ended.keys() <= started.keys(), "an end without its start"
    return [
        Execution(*key, e.pooled, e.start, ended.get(key))
        for key, e in sorted(started.items(), key=lambda kv: kv[1].start)
    ]


def _assert_each_ran_once(
    cluster: Cluster, ledger: Path, run_ids: list[str], *, tries: int = 1
) -> list[Execution]:
    """Every task instance of the runs succeeded at ``tries``, and the ledger shows each
    (run, task) started once and ended: none ran twice, none is missing."""
    for run_id in run_ids:
        tis = cluster.tis("scale", run_id)
        assert len(tis) == TASKS, run_id
        states = Counter((ti.state, ti.try_number) for ti in tis.values())
        assert states == {("success", tries): TASKS}, (run_id, states)
    executions = _ledger(ledger)
    counts = Counter((e.run_id, e.task_id) for e in executions)
    twice = {key: n for key, n in counts.items() if n > 1}
    assert not twice, f"executed more than once: {twice}"
    expected = {(run_id, task_id) for run_id in run_ids for task_id in cluster.tis("scale", run_id)}
    assert set(counts) == expected, f"missing: {expected - set(counts)}"
    unfinished = [e for e in executions if e.end is None]
    assert not unfinished, f"started but never ended: {unfinished}"
    return executions


def _most_at_once(executions: list[Execution]) -> int:
    return overlapping(
        [
            (datetime.fromtimestamp(e.start, UTC), datetime.fromtimestamp(e.end or e.start, UTC))
            for e in executions
        ]
    )


def _workers(cluster: Cluster, queue: str, count: int, concurrency: int) -> list[int]:
    """Start ``count`` Celery workers serving ``queue``; the ids of their jobs, once each
    has registered."""
    procs = [
        cluster.start("celery", "worker", "--queues", queue, "--concurrency", str(concurrency))
        for _ in range(count)
    ]
    pids = {p.pid for p in procs}

    def registered(session: Session) -> list[int] | None:
        jobs = session.scalars(
            sql_select(Job).where(Job.job_type == "worker", Job.pid.in_(pids))
        ).all()
        return [j.id for j in jobs] if len(jobs) == count else None

    ids: list[int] = cluster.wait_for(f"{count} celery workers to register", registered)
    return ids


def _in_state(cluster: Cluster, run_ids: list[str], state: str) -> int:
    with transaction(cluster.factory) as session:
        return int(
            session.scalar(
                sql_select(func.count())
                .select_from(TaskInstance)
                .where(TaskInstance.run_id.in_(run_ids), TaskInstance.state == state)
            )
            or 0
        )


def _scheduler_logs(cluster: Cluster) -> str:
    return "".join(p.read_text(errors="replace") for p in cluster.home.glob("scheduler-*.log"))


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """This file's broker: the broker server a test restarts (``server``) if it asks for
    one, else a database of the machine's shared Redis."""
    if "server" in request.fixturenames:
        own: BrokerServer = request.getfixturevalue("server")
        yield own.broker
        return
    with celery_broker("redis") as made:
        yield made


@pytest.fixture
def quick(cluster: Cluster) -> Cluster:
    """The cluster, with a try's heartbeat given room under a busy machine (no worker dies
    here: a try presumed lost would only be a slow pool process) and queued tries whose
    message went missing sent again after 2 s."""
    cluster.env["SLIPSTREAM__SCHEDULER__TASK_HEARTBEAT_TIMEOUT"] = "20"
    cluster.env["SLIPSTREAM__SCHEDULER__RESEND_QUEUED_AFTER"] = "2"
    return cluster


# --- 1. scale ---------------------------------------------------------------------------


def test_two_schedulers_and_three_celery_workers_run_500_tasks_once_within_every_limit(
    quick: Cluster, broker: Broker, tmp_path: Path
) -> None:
    cluster = quick
    # No fault here, so no re-sending either: it would hide a message lost for no reason.
    cluster.env["SLIPSTREAM__SCHEDULER__RESEND_QUEUED_AFTER"] = "600"
    ledger, queue = tmp_path / "ledger", broker.queue("default")
    cluster.write_dag("scale.py", _dag(ledger, queue))
    cluster.parse()
    set_pool(cluster.factory, POOL, POOL_SLOTS, actor="test")
    cluster.scheduler()
    cluster.scheduler()
    job_ids = _workers(cluster, queue, count=3, concurrency=4)
    conf = {"seconds": 0.01, "pool_seconds": 0.15}
    run_ids = [cluster.trigger("scale", run_id=f"s{n}", conf=conf) for n in range(10)]

    for run_id in run_ids:
        assert cluster.wait_run("scale", run_id) == "success", cluster.logs()

    executions = _assert_each_ran_once(cluster, ledger, run_ids)
    assert len(executions) == 10 * TASKS == 500
    pooled = [e for e in executions if e.pooled]
    assert len(pooled) == 10 * BRANCHES // 2
    # The pool's slots held across both schedulers and all workers; and each run's
    # max_active_tasks. (The pool was full at times: the limit was tested, not idle.)
    assert 1 < _most_at_once(pooled) <= POOL_SLOTS
    for run_id in run_ids:
        assert _most_at_once([e for e in executions if e.run_id == run_id]) <= MAX_ACTIVE_TASKS
    tis = [ti for run_id in run_ids for ti in cluster.tis("scale", run_id).values()]
    # The database agrees: from claim to end, never more than 4 tries of the pool at once.
    pool_tis = [
        (ti.start_date, ti.end_date)
        for ti in tis
        if ti.pool == POOL and ti.start_date is not None and ti.end_date is not None
    ]
    assert len(pool_tis) == len(pooled) and overlapping(pool_tis) <= POOL_SLOTS
    # Every worker took a share.
    assert {ti.worker_job_id for ti in tis} == set(job_ids)
    # Each try's log reached the database (core.executor celery ships them).
    with transaction(cluster.factory) as session:
        shipped = session.execute(
            sql_select(TaskLogChunk.run_id, TaskLogChunk.task_id).distinct()
        ).all()
    assert len(shipped) == 500


# --- 2. a broker restart --------------------------------------------------------------


class BrokerServer(Protocol):
    broker: Broker

    def down(self) -> None: ...
    def up(self) -> None: ...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_answering(
    what: str, answers: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path
) -> None:
    end = time.monotonic() + DEADLINE
    while not answers():
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        if time.monotonic() > end:
            pytest.fail(f"{what} does not answer:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


class OwnRedis:
    """A Redis server of this test's own, without persistence: a restart loses every
    message, as the machine's Redis (``--save "" --appendonly no``) would."""

    def __init__(self, folder: Path) -> None:
        self.server, self.cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if not (self.server and self.cli):
            _service_missing("Redis", FileNotFoundError("redis-server or redis-cli"))
        self.folder = folder
        self.port = _free_port()
        self.broker = Broker("redis", f"redis://127.0.0.1:{self.port}/0")
        self.proc: subprocess.Popen[bytes] | None = None
        self.up()

    def _answers(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def up(self) -> None:
        log = self.folder / "redis.log"
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly"]
        args += ["no", "--dir", str(self.folder), "--logfile", str(log)]
        self.proc = subprocess.Popen([str(self.server), *args], start_new_session=True)
        _wait_answering("redis-server", self._answers, self.proc, log)

    def down(self) -> None:
        assert self.proc is not None
        subprocess.run(
            [str(self.cli), "-p", str(self.port), "shutdown", "nosave"],
            check=False,
            capture_output=True,
            timeout=DEADLINE,
        )
        self.proc.wait(DEADLINE)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class OwnRabbitMQ:
    """A RabbitMQ node of this test's own (its name, ports, Erlang cookie and data in the
    test's folder), restarted as an operator would: ``rabbitmqctl stop_app`` then
    ``start_app``, which drops every connection; durable queues and their messages stay."""

    BIN = Path("/usr/lib/rabbitmq/bin")

    def __init__(self, folder: Path) -> None:
        server = self.BIN / "rabbitmq-server"
        if not server.exists():
            _service_missing("RabbitMQ", FileNotFoundError(server))
        port = _free_port()
        self.folder = folder
        self.node = f"slipstream-test-{os.getpid()}-{port}@localhost"
        self.broker = Broker("rabbitmq", f"amqp://guest:guest@127.0.0.1:{port}//")
        home = folder / "home"
        home.mkdir(parents=True)
        (folder / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{port}\n")
        (folder / "enabled_plugins").write_text("[].\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(home),  # the node's Erlang cookie, which rabbitmqctl reads too
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(_free_port()),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",  # not the machine node's name and flags
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self.log = folder / "log" / f"{self.node}.log"
        with open(folder / "server.out", "wb") as out:
            self.proc = subprocess.Popen(
                [str(server)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_answering("rabbitmq-server", self._answers, self.proc, self.log)

    def _answers(self) -> bool:
        from kombu import Connection

        conn = Connection(self.broker.url, connect_timeout=1)
        try:
            conn.connect()
            return True
        except Exception:  # refused, reset, or the node still booting: not yet
            return False
        finally:
            conn.release()

    def _ctl(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        assert done.returncode == 0, f"rabbitmqctl {args}: {done.stdout}{done.stderr}"

    def down(self) -> None:
        self._ctl("stop_app")

    def up(self) -> None:
        self._ctl("start_app")
        _wait_answering("rabbitmq after start_app", self._answers, self.proc, self.log)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the node is this test's: nothing to keep
        self.proc.wait()


@pytest.fixture(params=["redis", "rabbitmq"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerServer]:
    folder = tmp_path / f"own-{request.param}"
    folder.mkdir()
    made = OwnRedis(folder) if request.param == "redis" else OwnRabbitMQ(folder)
    try:
        yield made
    finally:
        made.close()


def test_runs_complete_through_a_broker_restart_with_every_task_once(
    server: BrokerServer, quick: Cluster, broker: Broker, tmp_path: Path
) -> None:
    cluster = quick
    ledger, hold, queue = tmp_path / "ledger", tmp_path / "hold", broker.queue("default")
    cluster.write_dag("scale.py", _dag(ledger, queue))
    cluster.parse()
    set_pool(cluster.factory, POOL, POOL_SLOTS, actor="test")
    cluster.scheduler()
    cluster.scheduler()
    _workers(cluster, queue, count=2, concurrency=3)
    hold.touch()  # the tasks started before the restart stay running through it
    conf = {"hold": str(hold), "unheld": ["begin"]}
    run_ids = [cluster.trigger("scale", run_id=f"b{n}", conf=conf) for n in range(2)]

    # 2 runs x max_active_tasks 5 = 10 tries in flight: 6 held running on the workers'
    # 6 processes, 4 queued (their messages wait in the broker).
    cluster.wait_for(
        "6 tries running and the rest queued",
        lambda _: (
            _in_state(cluster, run_ids, "running") == 6
            and _in_state(cluster, run_ids, "queued") == 4
            and len([e for e in _ledger(ledger) if e.end is None]) == 6
        ),
    )
    server.down()
    try:
        hold.unlink()  # the running tries end while the broker is away: through the database
        cluster.wait_for(
            "the held tries to end and their downstream to fail to be sent",
            lambda _: (
                [e for e in _ledger(ledger) if e.end is None] == []
                and _in_state(cluster, run_ids, "running") == 0
                and "could not send" in _scheduler_logs(cluster)
            ),
        )
    finally:
        server.up()

    for run_id in run_ids:
        assert cluster.wait_run("scale", run_id) == "success", cluster.logs()
    _assert_each_ran_once(cluster, ledger, run_ids)
    logs = cluster.logs()
    worker_logs = [p.read_text() for p in cluster.home.glob("celery-*.log")]
    assert len(worker_logs) == 2
    assert all("Connection to broker lost" in w for w in worker_logs), logs  # both felt it
    # What was queued while the broker was away was sent again once it was back.
    assert "to the executor again" in _scheduler_logs(cluster), logs


# --- 3. a scheduler killed ------------------------------------------------------------


def test_runs_complete_with_celery_workers_when_one_of_two_schedulers_is_killed(
    quick: Cluster, broker: Broker, tmp_path: Path
) -> None:
    cluster = quick
    ledger, queue = tmp_path / "ledger", broker.queue("default")
    cluster.write_dag("scale.py", _dag(ledger, queue))
    cluster.parse()
    set_pool(cluster.factory, POOL, POOL_SLOTS, actor="test")
    doomed = cluster.scheduler()
    cluster.scheduler()
    _workers(cluster, queue, count=2, concurrency=4)
    conf = {"seconds": 0.02, "pool_seconds": 0.05}
    run_id = cluster.trigger("scale", run_id="k", conf=conf)
    cluster.wait_for(
        "a few tasks to end", lambda _: len([e for e in _ledger(ledger) if e.end]) >= 10
    )

    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert len(_ledger(ledger)) < TASKS, "the run ended before the kill: nothing tested"

    assert cluster.wait_run("scale", run_id) == "success", cluster.logs()
    executions = _assert_each_ran_once(cluster, ledger, [run_id])
    assert _most_at_once([e for e in executions if e.pooled]) <= POOL_SLOTS


def _dag(ledger: Path, queue: str) -> str:
    return SCALE_DAG.format(
        ledger=str(ledger),
        pool=POOL,
        queue=queue,
        max_active=MAX_ACTIVE_TASKS,
        branches=BRANCHES,
        steps=STEPS,
    )
