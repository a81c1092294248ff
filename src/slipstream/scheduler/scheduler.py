"""The scheduler loop: one pass (:meth:`Scheduler.run_once`) at a time, woken by events.

A pass, each step in its own short transaction so workers are never kept waiting long:

1. create the scheduled runs that are due (timetables, catchup, ``max_active_runs``);
2. start queued runs (triggers, scheduled, backfills) within ``max_active_runs``;
3. find tries whose worker stopped heartbeating, and retry or fail them;
4. look at the runs that changed — those named by worker events, with a retry due, just
   started — and at every running run on a slow safety sweep;
5. queue scheduled tasks in priority order within pools, ``max_active_tasks`` and
   ``parallelism``, then hand the workloads to the executor.

Every ``scheduler.resend_queued_after`` seconds, tries queued that long are handed to the
executor again (:mod:`slipstream.scheduler.upkeep`).

Between passes it sleeps on the executor's event descriptor until the next thing that is
due (a schedule, a retry, a timeout, a heartbeat check), so a finished task is followed by
its downstream's queueing at once and an idle scheduler costs nothing. The scheduler never
imports user code: everything it knows of a DAG comes from its serialized form.

Several schedulers may run on one PostgreSQL database (on SQLite a second one refuses to
start: :mod:`slipstream.scheduler.registration`). Each step locks what it writes, skipping
what another scheduler holds, and queueing is a critical section one scheduler at a time
(:mod:`slipstream.scheduler.new_runs`, :mod:`slipstream.scheduler.queueing`); every
scheduler hears every wake-up, so a run another scheduler held is looked at by it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.errors import DatabaseError
from slipstream.executors.base import Executor, Workload
from slipstream.scheduler import queueing, registration, upkeep
from slipstream.scheduler.dag_cache import DagCache
from slipstream.scheduler.evaluation import evaluate_run
from slipstream.scheduler.new_runs import create_scheduled_runs, start_queued_runs
from slipstream.store import jobs, scheduling
from slipstream.store.db import transaction

log = logging.getLogger(__name__)

RunKey = tuple[str, str]
#: how long an evaluating pass waits for a lock before yielding (see limit_lock_waits)
LOCK_WAIT_SECONDS = 0.5
#: how soon a pass that failed on a database error is tried again
RETRY_AFTER_ERROR_SECONDS = 1.0


class Scheduler:
    def __init__(
        self,
        config: Config,
        session_factory: sessionmaker[Session],
        executor: Executor,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.factory = session_factory
        self.executor = executor
        self.clock = clock
        self.hostname = socket.gethostname()
        self.dags = DagCache()
        self.job_id: int | None = None
        self._dirty: set[RunKey] = set()
        self._last_sweep: datetime | None = None
        self._last_heartbeat: datetime | None = None
        self._last_lost_check: datetime | None = None
        self._last_resend_check: datetime | None = None
        #: another scheduler was queueing: queue again at this moment
        self._queue_retry_at: datetime | None = None
        #: DAGs at their max_active_runs: not due until one of their runs ends
        self._blocked: set[str] = set()
        self._wake_at: dict[RunKey, datetime] = {}
        self._warned_pools: set[str] = set()
        #: something new may be due (start, trigger, unpause, a run ended): look for it
        self._look_for_new = True
        self._next_creation: datetime | None = None
        #: scheduled tasks may be waiting for room that has since been freed
        self._queue_pending = True

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Register (on SQLite, refuse with :class:`registration.AnotherSchedulerRunning`
        while another scheduler runs), then start the executor."""
        now = self.clock()
        with transaction(self.factory) as session:
            self.job_id = registration.register(
                session,
                hostname=self.hostname,
                pid=os.getpid(),
                now=now,
                heartbeat_interval=self.config.scheduler.heartbeat_interval,
            )
        self._last_heartbeat = now
        self.executor.start()

    def stop(self) -> None:
        self.executor.stop()
        if self.job_id is not None:
            with transaction(self.factory) as session:
                jobs.stop(session, self.job_id, self.clock())

    def run(
        self,
        should_stop: Callable[[], bool],
        *,
        idle_exit: bool = False,
        interrupt_fd: int | None = None,
    ) -> None:
        """Pass after pass until ``should_stop()``; ``idle_exit`` stops once nothing is
        running or queued and nothing will be (for tests and one-shot use). A readable
        ``interrupt_fd`` wakes the loop to check ``should_stop`` (signals)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.executor.fileno(), selectors.EVENT_READ, "events")
            if interrupt_fd is not None:
                selector.register(interrupt_fd, selectors.EVENT_READ, "interrupt")
            while not should_stop():
                try:
                    wake = self.run_once(self.clock())
                    if idle_exit and self.idle():
                        return
                except DatabaseError as exc:
                    # A lock wait given up, a deadlock victim, a database restarting: the
                    # pass's transaction rolled back and the database holds the truth. Look
                    # at everything again shortly (what this pass was to look at is gone).
                    log.warning(
                        "scheduler pass failed (%s); trying again in %g s",
                        exc,
                        RETRY_AFTER_ERROR_SECONDS,
                    )
                    self._last_sweep = None
                    wake = self.clock() + timedelta(seconds=RETRY_AFTER_ERROR_SECONDS)
                timeout = max(0.0, (wake - self.clock()).total_seconds())
                for key, _ in selector.select(timeout):
                    if key.data == "interrupt":
                        with contextlib.suppress(BlockingIOError, InterruptedError):
                            os.read(key.fd, 4096)

    def idle(self) -> bool:
        with transaction(self.factory, readonly=True) as session:
            counts = scheduling.active_run_counts(session)
        return not counts

    # -- one pass ---------------------------------------------------------------------
    def run_once(self, now: datetime) -> datetime:
        """One pass at ``now``; returns when the next pass is due if nothing wakes it."""
        for event in self.executor.events():
            if event.dag_id:
                self._dirty.add((event.dag_id, event.run_id))
                self._queue_pending = True  # a try ended: its slots are free
            else:
                self._look_for_new = True
        cfg = self.config.scheduler
        self._heartbeat(now)
        sweep = self._due(self._last_sweep, cfg.sweep_interval, now)
        if sweep:
            self._last_sweep = now
            self._look_for_new = self._queue_pending = True
        creation_due = self._next_creation is not None and self._next_creation <= now
        if self._look_for_new or creation_due:
            self._look_for_new = False
            self._create_scheduled_runs(now)
            self._start_queued_runs(now)
        if self._due(self._last_lost_check, cfg.task_heartbeat_timeout / 4, now):
            with transaction(self.factory) as session:
                self._dirty |= upkeep.fail_lost_tries(session, self.dags, self.config, now)
            self._last_lost_check = now
        if self._due(self._last_resend_check, cfg.resend_queued_after / 4, now):
            with transaction(self.factory) as session:
                resent = upkeep.resend_stuck(session, now, cfg.resend_queued_after)
            self.executor.submit(resent)  # after the commit, like any submission
            self._last_resend_check = now
        if self._queue_retry_at is not None and self._queue_retry_at <= now:
            self._queue_retry_at = None
            self._queue_pending = True
        self._evaluate_and_queue(now, sweep=sweep)
        return self._next_wake(now)

    @staticmethod
    def _due(last: datetime | None, interval: float, now: datetime) -> bool:
        return last is None or (now - last).total_seconds() >= interval

    def _heartbeat(self, now: datetime) -> None:
        if self.job_id is None:
            return
        if self._due(self._last_heartbeat, self.config.scheduler.heartbeat_interval, now):
            with transaction(self.factory) as session:
                jobs.heartbeat(session, self.job_id, now)
            self._last_heartbeat = now

    # -- 1 and 2. new runs -------------------------------------------------------------
    def _create_scheduled_runs(self, now: datetime) -> None:
        with transaction(self.factory, readonly=True) as session:
            if not scheduling.due_dags(session, now):
                self._next_creation = scheduling.next_creation_times(session, self._blocked)
                return
        with transaction(self.factory) as session:
            create_scheduled_runs(session, self.dags, self.config, now, self._blocked)
        with transaction(self.factory, readonly=True) as session:
            self._next_creation = scheduling.next_creation_times(session, self._blocked)

    def _start_queued_runs(self, now: datetime) -> None:
        with transaction(self.factory, readonly=True) as session:
            if not scheduling.has_queued_runs(session):
                return
        with transaction(self.factory) as session:
            self._dirty.update(start_queued_runs(session, self.dags, self.config, now))

    # -- 4 and 5. runs that changed, then queueing ---------------------------------------
    def _evaluate_and_queue(self, now: datetime, *, sweep: bool) -> None:
        """Look at the runs that changed and queue what is ready, in one transaction: the
        common pass after a try ends costs one commit."""
        dirty = self._dirty | {k for k, at in self._wake_at.items() if at <= now}
        self._dirty = set()
        if not (dirty or sweep or self._queue_pending):
            return
        ended = False
        workloads: list[Workload] = []
        with transaction(self.factory) as session:
            scheduling.limit_lock_waits(session, LOCK_WAIT_SECONDS)
            if dirty or sweep:
                # Locked: another scheduler's runs are left to it (it hears the same wake-ups).
                runs = scheduling.running_runs(session, None if sweep else dirty, lock=True)
                looked = {(run.dag_id, run.run_id) for run in runs}
                for run in runs:  # grows while it is walked: see depends_on_past below
                    key = (run.dag_id, run.run_id)
                    self._wake_at.pop(key, None)
                    dag = self.dags.get(session, run.dag_version_id) if run.dag_version_id else None
                    if dag is None:
                        continue
                    result = evaluate_run(session, run, dag, now=now, hostname=self.hostname)
                    if dag.has_past_dependencies and run.logical_date is not None:
                        # The next run may have waited on this one's task states.
                        later = scheduling.next_running_run(session, run.dag_id, run.logical_date)
                        if later is not None and (later.dag_id, later.run_id) not in looked:
                            looked.add((later.dag_id, later.run_id))
                            runs.extend(
                                scheduling.running_runs(
                                    session, [(later.dag_id, later.run_id)], lock=True
                                )
                            )
                    if result.scheduled:
                        self._queue_pending = True
                    if result.finished is not None:
                        ended = True
                        self._blocked.discard(run.dag_id)
                        log.info(
                            "DAG run %s/%s ended %s", run.dag_id, run.run_id, result.finished.value
                        )
                    elif result.wake_at is not None:
                        self._wake_at[key] = result.wake_at
            if self._queue_pending:
                self._queue_pending = False
                queued = queueing.queue_scheduled(
                    session, self.dags, self.config, now, self._warned_pools
                )
                workloads, self._queue_pending = queued.workloads, queued.pending
                if queued.busy:
                    self._queue_retry_at = now + timedelta(seconds=queueing.RETRY_SECONDS)
        # After the commit: a worker woken now must find the rows queued.
        self.executor.submit(workloads)
        if ended:
            # A finished run frees room for queued ones and scheduled ones: at once.
            self._create_scheduled_runs(now)
            self._start_queued_runs(now)
            if self._dirty:
                self._evaluate_and_queue(now, sweep=False)

    # -- sleeping -----------------------------------------------------------------------
    def _next_wake(self, now: datetime) -> datetime:
        """The earliest future moment something is due. Moments already past were acted on
        this pass, or cannot be yet (a pool that does not exist): they must not spin the
        loop, and an event or the sweep brings them back."""
        cfg = self.config.scheduler
        candidates = [
            now + timedelta(seconds=cfg.sweep_interval),
            now + timedelta(seconds=cfg.task_heartbeat_timeout / 4),
            *self._wake_at.values(),
        ]
        if self._last_resend_check is not None:
            candidates.append(
                self._last_resend_check + timedelta(seconds=cfg.resend_queued_after / 4)
            )
        if self._queue_retry_at is not None:
            candidates.append(self._queue_retry_at)
        if self.job_id is not None and self._last_heartbeat is not None:
            candidates.append(self._last_heartbeat + timedelta(seconds=cfg.heartbeat_interval))
        if self._next_creation is not None:
            candidates.append(self._next_creation)
        future = [c for c in candidates if c > now]
        return min(future) if future else now + timedelta(seconds=cfg.sweep_interval)
