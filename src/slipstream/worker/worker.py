"""The worker: claims queued tries, runs each in a forked child, records how it ended.

One warm process serves up to ``concurrency`` tries at once. For each claimed try it forks
a child (no interpreter start, nothing to import but the DAG file), and the child imports
the DAG file, renders templates and runs the task with its output in the try's log. The
parent never runs user code, so a task that hangs, crashes or leaks cannot take the worker
down with it.

The parent heartbeats itself and every try it runs. A heartbeat that finds its try no
longer running under its try number (cleared, marked, or presumed lost after a stall) stops
the child: the row has a newer owner or a newer truth, and the worker's late word would be
refused anyway, since the final write is a compare-and-set on state and try number.

:meth:`Worker.run_workload` is the same machinery for one try a message names (the Celery
task): claim exactly that try, run it in a child, heartbeat it, record its end.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import select
import selectors
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TypeVar

from cryptography.fernet import MultiFernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from slipstream import masking
from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.dagbag import import_dag_file
from slipstream.decisions import retry_time, state_after_failure
from slipstream.errors import DagImportError, DatabaseError, TaskNotFound
from slipstream.executors.base import TaskEvent, Workload
from slipstream.executors.local import notify_scheduler
from slipstream.executors.wakeup import SCHEDULER, WORKER, WakeListener, WakeSender, wake_folder
from slipstream.sdk.context import DagRunInfo
from slipstream.sdk.dag import set_default_timezone
from slipstream.sdk.runtime import set_backend
from slipstream.sdk.taskinstance import XComReader
from slipstream.serialization import SerializedDag, SerializedTask
from slipstream.states import TaskInstanceState
from slipstream.store import dags as dag_store
from slipstream.store import jobs
from slipstream.store import queue as queue_store
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import session_factory as make_session_factory
from slipstream.store.db import transaction
from slipstream.store.queue import TryRef
from slipstream.store.secrets import DatabaseBackend
from slipstream.store.task_instances import TIKey
from slipstream.task_logs import try_log_path
from slipstream.worker.dag_files import DagFileCache, Stamp, stamp_of
from slipstream.worker.dag_test import DbXComReader
from slipstream.worker.execution import ChildTry, TryOutcome, TryRequest, fork_try
from slipstream.worker.log_shipping import LogShipper

log = logging.getLogger(__name__)

_S = TaskInstanceState
_T = TypeVar("_T")
_PR_SET_PDEATHSIG = 1


@dataclass
class _Running:
    ref: TryRef
    child: ChildTry
    task: SerializedTask | None
    #: the DAG file, as it was when the try started
    fileloc: Path | None = None
    stamp: Stamp | None = None
    #: the row moved on without us (cleared, marked, presumed lost): discard the result
    lost: bool = False


class Worker:
    def __init__(
        self,
        config: Config,
        engine: Engine,
        fernet: MultiFernet,
        *,
        concurrency: int | None = None,
        queues: list[str] | None = None,
        burst: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.engine = engine
        self.factory = make_session_factory(engine)
        self.fernet = fernet
        self.concurrency = concurrency or config.worker.concurrency
        self.queues = queues or [q.strip() for q in config.worker.queues.split(",") if q.strip()]
        self.burst = burst
        self.clock = clock
        self.hostname = socket.gethostname()
        self.log_shipper = LogShipper.from_config(config, self.factory, self.hostname)
        self.pid = os.getpid()
        self.job_id: int | None = None
        self.running: dict[int, _Running] = {}  # by the child's pipe fd
        self._dags: dict[int, SerializedDag] = {}
        # A slow import stays in the children: the worker must not stall its heartbeats.
        self._dag_files = DagFileCache(min(config.core.dag_file_processor_timeout, 5.0))
        self._runs: OrderedDict[tuple[str, str], tuple[DagRunInfo | None, SerializedDag | None]] = (
            OrderedDict()
        )
        self._stopping = False
        self._stop_deadline: float | None = None
        self.tries_run = 0
        #: children that reported their try and are exiting: reaped when they are done
        self._exiting: list[int] = []
        #: wakes the schedulers of this machine while :meth:`run` serves
        self._sender: WakeSender | None = None

    def _reap(self) -> None:
        still = []
        for pid in self._exiting:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if not done:
                still.append(pid)
        self._exiting = still

    # -- life cycle -------------------------------------------------------------------
    def request_stop(self) -> None:
        """Take no more work; let running tries finish within worker.shutdown_timeout."""
        if not self._stopping:
            self._stopping = True
            self._stop_deadline = time.monotonic() + self.config.worker.shutdown_timeout
            log.info("worker stopping: waiting for %d running tries", len(self.running))

    def run(self) -> None:
        """Serve until stopped (SIGTERM/SIGINT through :meth:`request_stop`), or, with
        ``burst``, until no queued work is left."""
        prepare_process(self.config)
        folder = wake_folder(self.config.database_url)
        # With PostgreSQL the wake-ups also cross hosts (LISTEN/NOTIFY).
        listener = WakeListener(folder, WORKER, database_url=self.config.database_url)
        self._sender = WakeSender(folder, database_url=self.config.database_url)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        previous_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        with transaction(self.factory) as session:
            self.job_id = jobs.register(
                session,
                "worker",
                hostname=self.hostname,
                pid=self.pid,
                now=self.clock(),
                detail=",".join(self.queues),
            )
        last_heartbeat = time.monotonic()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(listener.fileno(), selectors.EVENT_READ, "wake")
                selector.register(wake_r.fileno(), selectors.EVENT_READ, "signal")
                claim_now = True
                while True:
                    if claim_now and not self._stopping:
                        for run in self._safely(self._claim, list[_Running]()):
                            selector.register(run.child.fd, selectors.EVENT_READ, run)
                    claim_now = False
                    if self._stopping and not self.running:
                        return
                    if self.burst and not self.running:
                        if not self._has_queued():
                            return
                        claim_now = True
                        continue
                    interval = self.config.worker.heartbeat_interval
                    timeout = max(0.0, last_heartbeat + interval - time.monotonic())
                    deadlines = [r.child.kill_deadline for r in self.running.values()]
                    timeout = min(
                        [timeout]
                        + [max(0.0, d - time.monotonic()) for d in deadlines if d is not None]
                    )
                    if self._stop_deadline is not None:
                        timeout = min(timeout, max(0.0, self._stop_deadline - time.monotonic()))
                    for key, _ in selector.select(timeout):
                        if key.data == "wake":
                            listener.drain()
                            claim_now = True
                        elif key.data == "signal":
                            with contextlib.suppress(BlockingIOError):
                                wake_r.recv(4096)
                        else:
                            run = key.data
                            if run.child.read():
                                selector.unregister(run.child.fd)
                                del self.running[run.child.fd]
                                outcome = run.child.collect(wait=False)
                                if not run.child.reaped:
                                    self._exiting.append(run.child.pid)
                                self._safely(functools.partial(self._record, run, outcome), None)
                                claim_now = True
                    self._reap()
                    grace = self.config.core.killed_task_cleanup_time
                    for run in list(self.running.values()):
                        run.child.enforce_deadline(time.monotonic(), grace)
                    if time.monotonic() - last_heartbeat >= interval:
                        self._safely(self._heartbeat, None)
                        last_heartbeat = time.monotonic()
                        claim_now = True  # a safety net for a lost wake-up
                        listener.drain()  # ...which also re-makes a lost LISTEN connection
                    if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
                        self._stop_all("the worker was stopped before the task finished")
                        for fd in list(selector.get_map()):
                            if fd not in (listener.fileno(), wake_r.fileno()):
                                selector.unregister(fd)
        finally:
            for pid in self._exiting:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            signal.set_wakeup_fd(previous_fd)
            wake_r.close()
            wake_w.close()
            listener.close()
            self._sender.close()
            self._sender = None
            with transaction(self.factory) as session:
                jobs.stop(session, self.job_id, self.clock())

    def _safely(self, step: Callable[[], _T], fallback: _T) -> _T:
        """Run one step of the loop; a database error (a restart, a long lock) is logged
        and the loop goes on. What the step could not write is recovered by the design: an
        unrecorded end leaves the try to the scheduler's heartbeat check (it is retried),
        an unclaimed row stays queued."""
        try:
            return step()
        except DatabaseError as exc:
            log.warning("worker: database error, carrying on: %s", exc)
            return fallback

    # -- claiming and starting --------------------------------------------------------
    def _has_queued(self) -> bool:
        with transaction(self.factory, readonly=True) as session:
            return queue_store.count_queued(session, self.queues) > 0

    def _claim(self) -> list[_Running]:
        room = self.concurrency - len(self.running)
        if room <= 0:
            return []
        assert self.job_id is not None
        # Look before taking the write lock: most wake-ups after a try's end find nothing
        # queued yet, and an empty claim would only hold up the scheduler's next write.
        if not self._has_queued():
            return []
        with transaction(self.factory) as session:
            session.connection()  # begins, and on SQLite waits for the write lock
            now = self.clock()  # so a try's start is when it was claimed, not before
            refs = queue_store.claim(
                session,
                queues=self.queues,
                limit=room,
                job_id=self.job_id,
                hostname=self.hostname,
                pid=self.pid,
                now=now,
            )
            prepared = [(ref, self._describe(session, ref)) for ref in refs]
        started = []
        for ref, (info, dag) in prepared:
            run = self._start(ref, info, dag)
            if run is not None:
                self.running[run.child.fd] = run
                started.append(run)
        return started

    def _describe(
        self, session: Session, ref: TryRef
    ) -> tuple[DagRunInfo | None, SerializedDag | None]:
        """The run's context and DAG version, read once per run: neither changes while the
        run lasts (a cleared run keeps its logical date, conf and version)."""
        key = (ref.dag_id, ref.run_id)
        cached = self._runs.get(key)
        if cached is None:
            cached = self._read_run(session, ref)
            if cached[0] is not None:
                self._runs[key] = cached
                if len(self._runs) > 128:
                    self._runs.popitem(last=False)
        return cached

    def _read_run(
        self, session: Session, ref: TryRef
    ) -> tuple[DagRunInfo | None, SerializedDag | None]:
        row = run_store.get_dag_run(session, ref.dag_id, ref.run_id)
        if row is None or row.logical_date is None:
            return None, None
        dag = None
        if row.dag_version_id is not None:
            dag = self._dags.get(row.dag_version_id)
            if dag is None:
                version = dag_store.get_version(session, row.dag_version_id)
                if version is not None:
                    dag = SerializedDag.from_dict(version.data)
                    self._dags[row.dag_version_id] = dag
        prev = run_store.as_previous_run(
            run_store.previous_successful_run(session, ref.dag_id, row.logical_date)
        )
        info = DagRunInfo(
            dag_id=row.dag_id,
            run_id=row.run_id,
            run_type=row.run_type,
            logical_date=row.logical_date,
            data_interval_start=row.data_interval_start or row.logical_date,
            data_interval_end=row.data_interval_end or row.logical_date,
            conf=dict(row.conf or {}),
            start_date=row.start_date,
            run_after=row.run_after,
            prev_success=prev,
        )
        return info, dag

    def _start(
        self, ref: TryRef, info: DagRunInfo | None, dag: SerializedDag | None
    ) -> _Running | None:
        task = dag.task_dict.get(ref.task_id) if dag else None
        log_path = try_log_path(
            self.config.log_folder, ref.dag_id, ref.run_id, ref.task_id, ref.try_number
        )
        if info is None or dag is None:
            self._finish(ref, task, TryOutcome(_S.FAILED, "its DAG run or DAG version is gone"))
            return None
        fileloc = Path(dag.fileloc)
        stamp = stamp_of(fileloc)
        warm = self._dag_files.get(fileloc, stamp)
        parent = self.pid

        def prepare() -> tuple[TryRequest, XComReader | None]:
            # In the child: die with the worker, so a killed worker leaves no orphan that
            # would still be running a try the scheduler is about to hand to another.
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:
                os._exit(1)
            self.engine.dispose(close=False)
            set_backend(DatabaseBackend(self.factory, self.fernet))
            try:
                imported = warm or import_dag_file(fileloc)
            except DagImportError as exc:
                raise DagImportError(f"the DAG file {fileloc} failed to import: {exc}") from None
            live = next((d for d in imported.dags if d.dag_id == ref.dag_id), None)
            if live is None or ref.task_id not in live.task_dict:
                raise TaskNotFound(
                    f"task {ref.task_id!r} of DAG {ref.dag_id!r} is no longer in {fileloc}"
                )
            request = TryRequest(
                dag=live,
                task=live.task_dict[ref.task_id],
                dag_run=info,
                params=live.params.resolve(info.conf),
                try_number=ref.try_number,
                max_tries=ref.max_tries,
                hostname=self.hostname,
                log_path=log_path,
            )
            return request, DbXComReader(self.factory)

        child = fork_try(
            task_id=ref.task_id,
            try_number=ref.try_number,
            log_path=log_path,
            execution_timeout=task.execution_timeout if task else None,
            kill_grace=self.config.core.killed_task_cleanup_time,
            now_monotonic=time.monotonic(),
            prepare=prepare,
        )
        self.log_shipper.track(ref, log_path)
        self.tries_run += 1
        return _Running(ref, child, task, fileloc=fileloc, stamp=stamp)

    # -- ending -------------------------------------------------------------------------
    def _record(self, run: _Running, outcome: TryOutcome) -> None:
        if outcome.reported and run.fileloc is not None:
            self._dag_files.prove(run.fileloc, run.stamp)  # the child got past the import
        if run.lost:
            log.warning(
                "discarded the result of %s/%s/%s try %d: the try was taken away meanwhile",
                run.ref.dag_id,
                run.ref.run_id,
                run.ref.task_id,
                run.ref.try_number,
            )
            self._release(run.ref)
            return
        if run.child.timed_out:
            timeout = run.task.execution_timeout if run.task else None
            outcome.error = f"task timed out after {timeout} and was stopped"
            outcome.xcoms, outcome.skip_task_ids = {}, []
        if not outcome.reported or run.child.timed_out:
            outcome.state = state_after_failure(
                try_number=run.ref.try_number, max_tries=run.ref.max_tries
            )
        self._finish(run.ref, run.task, outcome)

    def _finish(self, ref: TryRef, task: SerializedTask | None, outcome: TryOutcome) -> None:
        self.log_shipper.finish(ref)  # first: a try recorded as ended has its log stored
        now = self.clock()
        due = retry_time(
            outcome.state,
            task,
            try_number=ref.try_number,
            finished_at=now,
            dag_id=ref.dag_id,
            task_id=ref.task_id,
            run_id=ref.run_id,
        )
        key = TIKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
        with transaction(self.factory) as session:
            owned = ti_store.finish_try(
                session,
                key,
                try_number=ref.try_number,
                state=outcome.state,
                now=now,
                error=outcome.error,
                xcoms=outcome.xcoms,
                next_retry_at=due,
                rendered_fields=outcome.rendered_fields,
            )
            # A branch's skips are part of its try's end: same transaction, same owner check.
            if owned and outcome.skip_task_ids:
                ti_store.skip_unstarted(
                    session, ref.dag_id, ref.run_id, outcome.skip_task_ids, now=now
                )
        if not owned:
            log.warning(
                "the end of %s/%s/%s try %d was refused: the try no longer belongs to this "
                "worker (cleared, marked or presumed lost)",
                ref.dag_id,
                ref.run_id,
                ref.task_id,
                ref.try_number,
            )
            self._release(ref)
            return
        event = TaskEvent(ref.dag_id, ref.run_id, ref.task_id, ref.try_number, outcome.state.value)
        self._wake_scheduler(event)

    def _release(self, ref: TryRef) -> None:
        """A try taken away from this worker has stopped: if it was cleared while running
        (restarting), the task may run again now. Then tell the scheduler to look."""
        self.log_shipper.finish(ref)
        with transaction(self.factory) as session:
            queue_store.release_restarting(session, ref.ti_id, ref.try_number, self.clock())
        event = TaskEvent(ref.dag_id, ref.run_id, ref.task_id, ref.try_number)
        self._wake_scheduler(event)

    def _wake_scheduler(self, event: TaskEvent) -> None:
        if self._sender is not None:
            self._sender.wake(SCHEDULER, event.to_json().encode())
        else:  # one try outside run() (a Celery task): the executors' shared way
            notify_scheduler(self.config.database_url, event)

    def _stop_all(self, reason: str) -> None:
        grace = self.config.core.killed_task_cleanup_time
        deadline = time.monotonic() + grace
        for run in self.running.values():
            run.child.terminate()
        for run in list(self.running.values()):
            run.child.stop(max(0.0, deadline - time.monotonic()))
            if not run.lost:
                state = state_after_failure(
                    try_number=run.ref.try_number, max_tries=run.ref.max_tries
                )
                self._finish(run.ref, run.task, TryOutcome(state, f"killed: {reason}"))
        self.running.clear()

    # -- one given try (what a Celery message asks) ---------------------------------------
    def run_workload(self, workload: Workload) -> bool:
        """Claim exactly the try ``workload`` names, run it to its end here and record it.

        False at once when that try is not queued: a message delivered twice or late (the
        try runs elsewhere, has ended, or was queued again under a newer number) runs nothing.
        """
        claimed = self._safely(functools.partial(self._claim_exact, workload), None)
        if claimed is None:
            return False
        ref, info, dag = claimed
        run = self._start(ref, info, dag)
        if run is not None:
            self.running[run.child.fd] = run
            self._supervise(run)
        return True

    def _claim_exact(
        self, w: Workload
    ) -> tuple[TryRef, DagRunInfo | None, SerializedDag | None] | None:
        assert self.job_id is not None
        with transaction(self.factory) as session:
            session.connection()  # begins, and on SQLite waits for the write lock
            ref = queue_store.claim_try(
                session,
                dag_id=w.dag_id,
                run_id=w.run_id,
                task_id=w.task_id,
                map_index=w.map_index,
                try_number=w.try_number,
                job_id=self.job_id,
                hostname=self.hostname,
                pid=self.pid,
                now=self.clock(),
            )
            if ref is None:
                return None
            info, dag = self._describe(session, ref)
        return ref, info, dag

    def _supervise(self, run: _Running) -> None:
        """:meth:`run`'s loop for one try: wait for its child, heartbeating it (which stops
        it if its row moved on) and enforcing its timeout, then record how it ended."""
        interval = self.config.worker.heartbeat_interval
        grace = self.config.core.killed_task_cleanup_time
        last_heartbeat = time.monotonic()
        while True:
            now = time.monotonic()
            timeout = last_heartbeat + interval - now
            if run.child.kill_deadline is not None:
                timeout = min(timeout, run.child.kill_deadline - now)
            ready, _, _ = select.select([run.child.fd], [], [], max(0.0, timeout))
            if ready and run.child.read():
                break
            run.child.enforce_deadline(time.monotonic(), grace)
            if time.monotonic() - last_heartbeat >= interval:
                self._safely(self._heartbeat, None)
                last_heartbeat = time.monotonic()
        del self.running[run.child.fd]
        outcome = run.child.collect(wait=False)
        self._safely(functools.partial(self._record, run, outcome), None)
        if not run.child.reaped:  # after the record: the next try need not wait for this
            with contextlib.suppress(ChildProcessError):
                os.waitpid(run.child.pid, 0)

    # -- heartbeats ---------------------------------------------------------------------
    def _heartbeat(self) -> None:
        now = self.clock()
        tries = {r.ref.ti_id: r for r in self.running.values() if not r.lost}
        with transaction(self.factory) as session:
            if self.job_id is not None:
                jobs.heartbeat(session, self.job_id, now)
            lost = queue_store.heartbeat(
                session, [(r.ref.ti_id, r.ref.try_number) for r in tries.values()], now
            )
        for ti_id in lost:
            run = tries[ti_id]
            run.lost = True
            log.warning(
                "stopping %s/%s/%s try %d: its row changed under it (cleared, marked or "
                "presumed lost)",
                run.ref.dag_id,
                run.ref.run_id,
                run.ref.task_id,
                run.ref.try_number,
            )
            run.child.terminate_then_kill(
                time.monotonic(), self.config.core.killed_task_cleanup_time
            )
        self.log_shipper.ship()  # the logs' new lines, at most once a heartbeat


def prepare_process(config: Config) -> None:
    """Set up a process that runs tries, once, before it forks any: masking, the default
    time zone, and the imports every task needs."""
    masking.set_sensitive_words(config.sensitive_words)
    set_default_timezone(config.core.default_timezone)
    _warm_up()


def _warm_up() -> None:
    """Import now, once, what every task needs, so each forked child starts with it loaded:
    the operators, the sensors and Jinja's sandbox with its extensions."""
    import slipstream.sdk.operators.bash
    import slipstream.sdk.operators.branch
    import slipstream.sdk.operators.python
    import slipstream.sdk.sensors.date_time
    import slipstream.sdk.sensors.filesystem
    import slipstream.sdk.sensors.python  # noqa: F401
    from slipstream.sdk.templating import make_environment

    make_environment(None)


def install_stop_handlers(worker: Worker) -> None:
    """SIGTERM and SIGINT ask the worker to stop gracefully; a second one stops it now."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if worker._stopping:
            worker._stop_deadline = time.monotonic()
        worker.request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
