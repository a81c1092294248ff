"""The scheduler loop: one pass (:meth:`Scheduler.run_once`) at a time, woken by events.

A pass, each step in its own short transaction so workers are never kept waiting long:

1. create the scheduled runs that are due (timetables, catchup, ``max_active_runs``);
2. start queued runs (triggers, scheduled, backfills) within ``max_active_runs``;
3. find tries whose worker stopped heartbeating, and retry or fail them;
4. look at the runs that changed — those named by worker events, with a retry due, just
   started — and at every running run on a slow safety sweep;
5. queue scheduled tasks in priority order within pools, ``max_active_tasks`` and
   ``parallelism``, then hand the workloads to the executor.

Between passes it sleeps on the executor's event descriptor until the next thing that is
due (a schedule, a retry, a timeout, a heartbeat check), so a finished task is followed by
its downstream's queueing at once and an idle scheduler costs nothing. The scheduler never
imports user code: everything it knows of a DAG comes from its serialized form.
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
from slipstream.decisions import QueueCandidate, retry_due, select_to_queue, state_after_failure
from slipstream.executors.base import Executor, Workload
from slipstream.scheduler.dag_cache import DagCache
from slipstream.scheduler.evaluation import evaluate_run
from slipstream.states import DagRunState, DagRunType, TaskInstanceState
from slipstream.store import dags as dag_store
from slipstream.store import jobs, scheduling
from slipstream.store import pools as pool_store
from slipstream.store import queue as queue_store
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import transaction
from slipstream.store.task_instances import TIKey
from slipstream.timetables import DataInterval, TimeRestriction, next_run_infos

log = logging.getLogger(__name__)

_S = TaskInstanceState
RunKey = tuple[str, str]


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
        self.executor.start()
        now = self.clock()
        with transaction(self.factory) as session:
            self.job_id = jobs.register(
                session, "scheduler", hostname=self.hostname, pid=os.getpid(), now=now
            )
        self._last_heartbeat = now

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
                wake = self.run_once(self.clock())
                if idle_exit and self.idle():
                    return
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
            self._fail_lost_tries(now)
            self._last_lost_check = now
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

    # -- 1. scheduled runs ------------------------------------------------------------
    def _create_scheduled_runs(self, now: datetime) -> None:
        per_loop = self.config.scheduler.max_dagruns_to_create_per_loop
        with transaction(self.factory, readonly=True) as session:
            if not scheduling.due_dags(session, now):
                self._next_creation = scheduling.next_creation_times(session, self._blocked)
                return
        with transaction(self.factory) as session:
            due = scheduling.due_dags(session, now)
            counts = scheduling.active_run_counts(session)
            for dag_row in due:
                assert dag_row.latest_version_id is not None  # due_dags requires it
                dag = self.dags.get(session, dag_row.latest_version_id)
                if dag is None:
                    continue
                limit = dag.max_active_runs or self.config.core.max_active_runs_per_dag
                active = sum(counts.get(dag_row.dag_id, {}).values())
                created = 0
                while (
                    dag_row.next_dagrun is not None
                    and dag_row.next_dagrun_create_after is not None
                    and dag_row.next_dagrun_create_after <= now
                    and active < limit
                    and created < per_loop
                ):
                    logical_date = dag_row.next_dagrun
                    start = dag_row.next_dagrun_data_interval_start or logical_date
                    end = dag_row.next_dagrun_data_interval_end or logical_date
                    run_id = f"{DagRunType.SCHEDULED.value}__{logical_date.isoformat()}"
                    if run_store.get_dag_run(session, dag_row.dag_id, run_id) is None:
                        run_store.create_dag_run(
                            session,
                            dag_id=dag_row.dag_id,
                            run_id=run_id,
                            run_type=DagRunType.SCHEDULED.value,
                            logical_date=logical_date,
                            data_interval=(start, end),
                            run_after=dag_row.next_dagrun_create_after,
                            conf={},
                            tasks=run_store.task_specs(dag),
                            now=now,
                            dag_version_id=dag_row.latest_version_id,
                            triggered_by="timetable",
                        )
                        active += 1
                        created += 1
                    restriction = TimeRestriction(dag.start_date, dag.end_date, dag.catchup)
                    infos = next_run_infos(
                        dag.timetable,
                        restriction,
                        now,
                        1,
                        last_automated_data_interval=DataInterval(start, end),
                    )
                    dag_store.set_next_dagrun(dag_row, infos[0] if infos else None)
                if active >= limit:
                    self._blocked.add(dag_row.dag_id)
                else:
                    self._blocked.discard(dag_row.dag_id)
        self._refresh_next_creation()

    def _refresh_next_creation(self) -> None:
        with transaction(self.factory, readonly=True) as session:
            self._next_creation = scheduling.next_creation_times(session, self._blocked)

    # -- 2. queued runs -----------------------------------------------------------------
    def _start_queued_runs(self, now: datetime) -> None:
        with transaction(self.factory, readonly=True) as session:
            if not scheduling.has_queued_runs(session):
                return
        with transaction(self.factory) as session:
            queued = scheduling.queued_runs(session)
            counts = scheduling.active_run_counts(session)
            running = {d: c.get(DagRunState.RUNNING.value, 0) for d, c in counts.items()}
            for run, held in queued:
                if held:
                    continue  # a paused DAG's runs wait, as in Airflow
                if run.dag_version_id is None:
                    continue
                dag = self.dags.get(session, run.dag_version_id)
                if dag is None:
                    continue
                limit = dag.max_active_runs or self.config.core.max_active_runs_per_dag
                if running.get(run.dag_id, 0) >= limit:
                    continue
                run_store.set_dag_run_state(
                    session, run.dag_id, run.run_id, DagRunState.RUNNING, now
                )
                running[run.dag_id] = running.get(run.dag_id, 0) + 1
                self._dirty.add((run.dag_id, run.run_id))

    # -- 3. lost tries --------------------------------------------------------------------
    def _fail_lost_tries(self, now: datetime) -> None:
        timeout = self.config.scheduler.task_heartbeat_timeout
        with transaction(self.factory) as session:
            # A cleared try whose worker died before stopping it: nothing runs it any more.
            for ref in queue_store.running_past_heartbeat(
                session, now=now, timeout=timeout, state=_S.RESTARTING
            ):
                if queue_store.release_restarting(session, ref.ti_id, ref.try_number, now):
                    self._dirty.add((ref.dag_id, ref.run_id))
            for ref in queue_store.running_past_heartbeat(session, now=now, timeout=timeout):
                run = run_store.get_dag_run(session, ref.dag_id, ref.run_id)
                dag = (
                    self.dags.get(session, run.dag_version_id)
                    if run and run.dag_version_id
                    else None
                )
                task = dag.task_dict.get(ref.task_id) if dag else None
                state = state_after_failure(try_number=ref.try_number, max_tries=ref.max_tries)
                due = None
                if state == _S.UP_FOR_RETRY and task is not None:
                    due = retry_due(
                        task,
                        try_number=ref.try_number,
                        finished_at=now,
                        dag_id=ref.dag_id,
                        task_id=ref.task_id,
                        run_id=ref.run_id,
                    )
                error = (
                    f"the worker running this try stopped heartbeating for over {timeout:g} s "
                    "(it died or hung); the try is presumed lost"
                )
                owned = ti_store.finish_try(
                    session,
                    TIKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index),
                    try_number=ref.try_number,
                    state=state,
                    now=now,
                    error=error,
                    next_retry_at=due,
                )
                if owned:
                    log.warning(
                        "task %s of %s/%s try %d: %s",
                        ref.task_id,
                        ref.dag_id,
                        ref.run_id,
                        ref.try_number,
                        error,
                    )
                    self._dirty.add((ref.dag_id, ref.run_id))

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
            if dirty or sweep:
                runs = scheduling.running_runs(session, None if sweep else dirty)
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
                            runs.append(later)
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
                workloads = self._queue(session, now)
        # After the commit: a worker woken now must find the rows queued.
        self.executor.submit(workloads)
        if ended:
            # A finished run frees room for queued ones and scheduled ones: at once.
            self._create_scheduled_runs(now)
            self._start_queued_runs(now)
            if self._dirty:
                self._evaluate_and_queue(now, sweep=False)

    def _queue(self, session: Session, now: datetime) -> list[Workload]:
        parallelism = self.config.scheduler.parallelism
        self._queue_pending = False
        candidates = queue_store.scheduled(session, limit=max(parallelism * 4, 64))
        if not candidates:
            return []
        usage = queue_store.in_flight(session)
        open_total = parallelism - usage.total
        if open_total <= 0:
            self._queue_pending = True
            return []
        pool_open = {
            name: slots - usage.pool_slots.get(name, 0)
            for name, slots in pool_store.slot_counts(session).items()
        }
        run_open: dict[RunKey, int] = {}
        for c in candidates:
            key = (c.ref.dag_id, c.ref.run_id)
            if key not in run_open:
                dag = self.dags.get(session, c.dag_version_id) if c.dag_version_id else None
                limit = (dag.max_active_tasks if dag else None) or (
                    self.config.core.max_active_tasks_per_dag
                )
                run_open[key] = limit - usage.by_run.get(key, 0)
        by_id = {c.ref.ti_id: c.ref for c in candidates}
        chosen = select_to_queue(
            [
                QueueCandidate(
                    ti_id=c.ref.ti_id,
                    run=(c.ref.dag_id, c.ref.run_id),
                    pool=c.ref.pool,
                    pool_slots=c.ref.pool_slots,
                    priority_weight=c.ref.priority_weight,
                    order=(c.logical_date.isoformat() if c.logical_date else "",),
                )
                for c in candidates
            ],
            pool_open=pool_open,
            run_open=run_open,
            parallel_open=open_total,
        )
        self._warn_missing_pools({c.ref.pool for c in candidates}, pool_open)
        workloads = []
        for candidate in chosen:
            queued = queue_store.queue_try(session, by_id[candidate.ti_id], now)
            if queued is not None:
                workloads.append(
                    Workload(
                        dag_id=queued.dag_id,
                        run_id=queued.run_id,
                        task_id=queued.task_id,
                        try_number=queued.try_number,
                        map_index=queued.map_index,
                        queue=queued.queue,
                        priority_weight=queued.priority_weight,
                    )
                )
        return workloads

    def _warn_missing_pools(self, pools: set[str], pool_open: dict[str, int]) -> None:
        for pool in sorted(pools - pool_open.keys() - self._warned_pools):
            log.warning(
                "tasks wait for pool %r, which does not exist (`slipstream pools set`)", pool
            )
            self._warned_pools.add(pool)

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
        if self.job_id is not None and self._last_heartbeat is not None:
            candidates.append(self._last_heartbeat + timedelta(seconds=cfg.heartbeat_interval))
        if self._next_creation is not None:
            candidates.append(self._next_creation)
        future = [c for c in candidates if c > now]
        return min(future) if future else now + timedelta(seconds=cfg.sweep_interval)
