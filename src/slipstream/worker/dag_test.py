"""One whole DAG run in one process, for local development: ``slipstream dags test``.

The run is recorded in the metadata database like any other. Which task runs next, what a
trigger rule says and when a retry is due come from :mod:`slipstream.decisions`, the same
functions the scheduler uses; each try runs in a forked child (see :mod:`.execution`), up to
``max_active_tasks`` at a time.
"""

from __future__ import annotations

import selectors
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from cryptography.fernet import MultiFernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import ensure_utc, utcnow
from slipstream.config import Config
from slipstream.decisions import (
    Verdict,
    dag_run_outcome,
    decide_ready,
    retry_time,
    state_after_failure,
    topological_order,
)
from slipstream.sdk.context import DagRunInfo, build_context
from slipstream.sdk.dag import DAG
from slipstream.sdk.operators.empty import EmptyOperator
from slipstream.sdk.runtime import set_backend
from slipstream.sdk.taskinstance import RuntimeTaskInstance, XComReader
from slipstream.serialization import priority_weight_totals
from slipstream.states import DagRunState, DagRunType, TaskInstanceState
from slipstream.store import audit
from slipstream.store import runs as run_queries
from slipstream.store import task_instances as ti_queries
from slipstream.store.db import session_factory as make_session_factory
from slipstream.store.db import transaction
from slipstream.store.models import Dag as DagRow
from slipstream.store.secrets import DatabaseBackend
from slipstream.store.task_instances import TIKey
from slipstream.store.xcoms import get_xcom
from slipstream.task_logs import try_log_path
from slipstream.worker.execution import (
    ChildTry,
    TryOutcome,
    TryRequest,
    run_callbacks,
    start_child,
)

_S = TaskInstanceState


@dataclass
class TaskProgress:
    """What a display needs to show one task's line."""

    task_id: str
    state: TaskInstanceState
    try_number: int = 0
    log_path: Path | None = None
    started: float | None = None  # time.monotonic() of the current try's start
    duration: float | None = None
    error: str | None = None


@dataclass
class RunResult:
    dag_id: str
    run_id: str
    state: DagRunState
    tasks: dict[str, TaskProgress] = field(default_factory=dict)
    reason: str | None = None


class DbXComReader:
    """Reads XComs of the run from the database, one short transaction per read."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def get_xcom(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        map_index: int,
        include_prior_dates: bool = False,
    ) -> tuple[bool, Any]:
        with transaction(self._factory) as session:
            return get_xcom(
                session,
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                key=key,
                map_index=map_index,
                include_prior_dates=include_prior_dates,
            )


class LocalDagRun:
    def __init__(
        self,
        *,
        dag: DAG,
        config: Config,
        engine: Engine,
        fernet: MultiFernet,
        listener: Callable[[TaskProgress], None] | None = None,
    ) -> None:
        self.dag = dag
        self.config = config
        self.engine = engine
        self.factory = make_session_factory(engine)
        self.fernet = fernet
        self.listener = listener or (lambda progress: None)
        self.hostname = socket.gethostname()
        self.nodes = dag.task_nodes()
        order = topological_order(self.nodes)
        # Effective weights follow each task's weight_rule, as the scheduler's will.
        self.weights = priority_weight_totals(dag)
        # Higher priority first; among equals, upstream-most first (a stable, readable order).
        rank = {task_id: i for i, task_id in enumerate(order)}
        self.order = sorted(order, key=lambda t: (-self.weights[t], rank[t]))

    # -- setup ------------------------------------------------------------------------
    def create_run(
        self,
        *,
        logical_date: datetime,
        conf: dict[str, Any],
        run_id: str | None,
        actor: str | None = None,
    ) -> DagRunInfo:
        """Validate params and create the run with its task instances, replacing an earlier
        test run of the same id. Nothing is written if params are invalid."""
        logical_date = ensure_utc(logical_date)
        params = self.dag.params.resolve(conf)
        interval = self.dag.timetable.infer_manual_data_interval(run_after=logical_date)
        run_id = run_id or run_queries.manual_run_id(logical_date)
        now = utcnow()
        with transaction(self.factory) as session:
            run_queries.delete_dag_run(session, self.dag.dag_id, run_id)
            row = session.get(DagRow, self.dag.dag_id)
            version_id = row.latest_version_id if row is not None else None
            run_queries.create_dag_run(
                session,
                dag_id=self.dag.dag_id,
                run_id=run_id,
                run_type=DagRunType.MANUAL.value,
                logical_date=logical_date,
                data_interval=(interval.start, interval.end),
                run_after=logical_date,
                conf=conf,
                tasks=[
                    run_queries.TaskSpec(
                        task_id=t.task_id,
                        operator=t.task_type,
                        max_tries=t.retries,
                        pool=t.pool,
                        pool_slots=t.pool_slots,
                        queue=t.queue,
                        priority_weight=self.weights[t.task_id],
                    )
                    for t in self.dag.tasks
                ],
                now=now,
                state=DagRunState.RUNNING,
                dag_version_id=version_id,
                triggered_by="test",
            )
            audit.record(
                session,
                "dag.test",
                owner=actor,
                dag_id=self.dag.dag_id,
                run_id=run_id,
                extra={"conf": conf} if conf else None,
            )
            self.past_states = run_queries.previous_run_states(
                session, self.dag.dag_id, logical_date
            )
            prev_success = run_queries.as_previous_run(
                run_queries.previous_successful_run(session, self.dag.dag_id, logical_date)
            )
        self.params = params
        return DagRunInfo(
            dag_id=self.dag.dag_id,
            run_id=run_id,
            run_type=DagRunType.MANUAL.value,
            logical_date=logical_date,
            data_interval_start=interval.start,
            data_interval_end=interval.end,
            conf=conf,
            start_date=now,
            run_after=logical_date,
            prev_success=prev_success,
        )

    # -- the loop ---------------------------------------------------------------------
    def run(
        self,
        *,
        logical_date: datetime,
        conf: dict[str, Any] | None = None,
        run_id: str | None = None,
        actor: str | None = None,
    ) -> RunResult:
        info = self.create_run(
            logical_date=logical_date, conf=conf or {}, run_id=run_id, actor=actor
        )
        self.info = info
        self.progress = {t: TaskProgress(t, _S.NONE) for t in self.order}
        states: dict[str, TaskInstanceState] = {t: _S.NONE for t in self.order}
        retry_at: dict[str, datetime | None] = {}
        running: dict[int, ChildTry] = {}
        for p in self.progress.values():
            self.listener(p)
        # SIGTERM ends the run like Ctrl-C does: tries stopped and recorded, run failed.
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            outcome, reason = self._loop(states, retry_at, running)
        except KeyboardInterrupt:
            outcome, reason = DagRunState.FAILED, "the run was interrupted"
        finally:
            signal.signal(signal.SIGTERM, previous)
            self._stop_children(running, states, retry_at, reason="the run was stopped")
        self._end_run(outcome, states)
        self._run_dag_callbacks(outcome, reason)
        return RunResult(self.dag.dag_id, info.run_id, outcome, self.progress, reason)

    def _loop(
        self,
        states: dict[str, TaskInstanceState],
        retry_at: dict[str, datetime | None],
        running: dict[int, ChildTry],
    ) -> tuple[DagRunState, str | None]:
        limit = self.dag.max_active_tasks or self.config.core.max_active_tasks_per_dag
        timeout = self.dag.dagrun_timeout
        started = time.monotonic()
        with selectors.DefaultSelector() as selector:
            while True:
                now = utcnow()
                verdicts = decide_ready(
                    self.nodes,
                    states,
                    now=now,
                    next_retry_at=retry_at,
                    past_states=self.past_states,
                )
                changed = False
                for task_id in self.order:
                    verdict = verdicts.get(task_id)
                    if verdict in (Verdict.SKIP, Verdict.UPSTREAM_FAILED):
                        new = _S.SKIPPED if verdict == Verdict.SKIP else _S.UPSTREAM_FAILED
                        self._set_final(task_id, states, new, now)
                        changed = True
                    elif verdict == Verdict.RUN and len(running) < limit:
                        child = self._start(task_id, states, now)
                        if child is None:
                            changed = True  # finished in place (EmptyOperator)
                        else:
                            running[child.fd] = child
                            selector.register(child.fd, selectors.EVENT_READ, child)
                if changed:
                    continue
                outcome = dag_run_outcome(self.nodes, states)
                if outcome is not None and not running:
                    return outcome, None
                if (
                    not running
                    and not _retry_pending(states)
                    and all(v == Verdict.WAIT for v in verdicts.values())
                ):
                    return (
                        DagRunState.FAILED,
                        "no task can run: the remaining tasks wait on depends_on_past",
                    )
                if timeout is not None and time.monotonic() - started > timeout.total_seconds():
                    reason = f"the run exceeded its dagrun_timeout of {timeout}"
                    self._stop_children(running, states, retry_at, reason=reason)
                    return DagRunState.FAILED, reason
                wait = self._wait_seconds(retry_at, states, running, started)
                for key, _ in selector.select(timeout=wait):
                    child = key.data
                    if child.read():
                        selector.unregister(child.fd)
                        del running[child.fd]
                        self._record(child, child.collect(), states, retry_at)
                grace = self.config.core.killed_task_cleanup_time
                for child in list(running.values()):
                    child.enforce_deadline(time.monotonic(), grace)  # EOF follows when it ends

    def _stop_children(
        self,
        running: dict[int, ChildTry],
        states: dict[str, TaskInstanceState],
        retry_at: dict[str, datetime | None],
        *,
        reason: str,
    ) -> None:
        """Stop every running try and record it failed, with why, and no retry."""
        # Signal them all first, so they wind down together within one grace period.
        deadline = time.monotonic() + self.config.core.killed_task_cleanup_time
        for child in running.values():
            child.terminate()
        for child in list(running.values()):
            child.stop(max(0.0, deadline - time.monotonic()))
            outcome = TryOutcome(_S.FAILED, f"killed: {reason}")
            self._record_outcome(child.task_id, child.try_number, outcome, states, retry_at)
        running.clear()

    def _wait_seconds(
        self,
        retry_at: dict[str, datetime | None],
        states: dict[str, TaskInstanceState],
        running: dict[int, ChildTry],
        started: float,
    ) -> float:
        now = utcnow()
        mono = time.monotonic()
        waits = [5.0]
        for task_id, due in retry_at.items():
            if due is not None and states[task_id] == _S.UP_FOR_RETRY:
                waits.append((due - now).total_seconds())
        waits += [c.kill_deadline - mono for c in running.values() if c.kill_deadline is not None]
        if self.dag.dagrun_timeout is not None:
            waits.append(started + self.dag.dagrun_timeout.total_seconds() - mono)
        return max(0.0, min(waits))

    def _notify(self, task_id: str, **changes: Any) -> None:
        progress = self.progress[task_id]
        for name, value in changes.items():
            setattr(progress, name, value)
        self.listener(progress)

    def _set_final(
        self,
        task_id: str,
        states: dict[str, TaskInstanceState],
        new: TaskInstanceState,
        now: datetime,
    ) -> None:
        with transaction(self.factory) as session:
            ti_queries.set_state(
                session, self._key(task_id), expected={_S.NONE}, new=new, now=now, end_date=now
            )
        states[task_id] = new
        self._notify(task_id, state=new)

    def _key(self, task_id: str) -> TIKey:
        return TIKey(self.dag.dag_id, self.info.run_id, task_id)

    def _start(
        self, task_id: str, states: dict[str, TaskInstanceState], now: datetime
    ) -> ChildTry | None:
        task = self.dag.task_dict[task_id]
        with transaction(self.factory) as session:
            try_number = ti_queries.start_try(
                session,
                self._key(task_id),
                expected={_S.NONE, _S.SCHEDULED, _S.UP_FOR_RETRY},
                now=now,
                hostname=self.hostname,
            )
        if try_number is None:  # someone else changed the row: leave it to them
            states[task_id] = _S.REMOVED
            return None
        states[task_id] = _S.RUNNING
        log_path = try_log_path(
            self.config.log_folder, self.dag.dag_id, self.info.run_id, task_id, try_number
        )
        self._notify(
            task_id,
            state=_S.RUNNING,
            try_number=try_number,
            log_path=log_path,
            started=time.monotonic(),
        )
        if type(task) is EmptyOperator and not (
            task.on_success_callback or task.on_execute_callback
        ):
            # Nothing to run: finish it here, as Airflow's scheduler does.
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text("EmptyOperator: nothing to run; marked success.\n")
            self._record_outcome(task_id, try_number, TryOutcome(_S.SUCCESS), states, {})
            return None
        request = TryRequest(
            dag=self.dag,
            task=task,
            dag_run=self.info,
            params=self.params,
            try_number=try_number,
            max_tries=task.retries,
            hostname=self.hostname,
            log_path=log_path,
        )
        return start_child(
            request,
            child_init=self._child_init,
            kill_grace=self.config.core.killed_task_cleanup_time,
            now_monotonic=time.monotonic(),
        )

    def _child_init(self) -> XComReader:
        # Database connections must not cross a fork: drop the parent's (without closing
        # them under the parent's feet) and let the child open its own.
        self.engine.dispose(close=False)
        set_backend(DatabaseBackend(self.factory, self.fernet))
        return DbXComReader(self.factory)

    def _record(
        self,
        child: ChildTry,
        outcome: TryOutcome,
        states: dict[str, TaskInstanceState],
        retry_at: dict[str, datetime | None],
    ) -> None:
        task = self.dag.task_dict[child.task_id]
        if child.timed_out:
            outcome.error = f"task timed out after {task.execution_timeout} and was stopped"
            outcome.xcoms, outcome.skip_task_ids = {}, []
        if not outcome.reported or child.timed_out:
            # The child could not decide; decide the retry here with the same rule.
            outcome.state = state_after_failure(try_number=child.try_number, max_tries=task.retries)
        self._record_outcome(child.task_id, child.try_number, outcome, states, retry_at)

    def _record_outcome(
        self,
        task_id: str,
        try_number: int,
        outcome: TryOutcome,
        states: dict[str, TaskInstanceState],
        retry_at: dict[str, datetime | None],
    ) -> None:
        task = self.dag.task_dict[task_id]
        now = utcnow()
        due = retry_time(
            outcome.state,
            task,
            try_number=try_number,
            finished_at=now,
            dag_id=self.dag.dag_id,
            task_id=task_id,
            run_id=self.info.run_id,
        )
        skipped: list[str] = []
        with transaction(self.factory) as session:
            owned = ti_queries.finish_try(
                session,
                self._key(task_id),
                try_number=try_number,
                state=outcome.state,
                now=now,
                error=outcome.error,
                xcoms=outcome.xcoms,
                next_retry_at=due,
                rendered_fields=outcome.rendered_fields,
            )
            # A branch's or short circuit's skips are part of its try's end: written in the
            # same transaction, and only if the try still owned its row.
            if owned and outcome.skip_task_ids:
                skipped = ti_queries.skip_unstarted(
                    session, self.dag.dag_id, self.info.run_id, outcome.skip_task_ids, now=now
                )
        states[task_id] = outcome.state
        retry_at[task_id] = due
        progress = self.progress[task_id]
        duration = time.monotonic() - progress.started if progress.started else None
        self._notify(task_id, state=outcome.state, duration=duration, error=outcome.error)
        for skipped_id in sorted(skipped, key=self.order.index):
            states[skipped_id] = _S.SKIPPED
            self._notify(skipped_id, state=_S.SKIPPED)

    def _end_run(self, outcome: DagRunState, states: dict[str, TaskInstanceState]) -> None:
        now = utcnow()
        with transaction(self.factory) as session:
            # A run cut short (dagrun_timeout, deadlock) leaves no task unfinished: what was
            # running failed, what never ran is skipped, as in Airflow.
            for task_id, state in states.items():
                if not state.is_finished:
                    new = _S.FAILED if state == _S.RUNNING else _S.SKIPPED
                    ti_queries.set_state(
                        session, self._key(task_id), expected={state}, new=new, now=now
                    )
                    states[task_id] = new
                    self._notify(task_id, state=new)
            run_queries.set_dag_run_state(session, self.dag.dag_id, self.info.run_id, outcome, now)

    def _run_dag_callbacks(self, outcome: DagRunState, reason: str | None) -> None:
        """The DAG's on_success_callback / on_failure_callback, with the context of the run's
        last task to start and a ``reason`` (Airflow: "success", "task_failure", ...)."""
        success = outcome == DagRunState.SUCCESS
        callbacks = self.dag.on_success_callback if success else self.dag.on_failure_callback
        started = [p for p in self.progress.values() if p.started is not None]
        if not callbacks or not self.dag.tasks:
            return
        last = max(started, key=lambda p: p.started or 0.0) if started else None
        task = self.dag.task_dict[last.task_id if last else self.order[0]]
        ti = RuntimeTaskInstance(
            task=task,
            dag_id=self.dag.dag_id,
            run_id=self.info.run_id,
            try_number=last.try_number if last else 0,
            max_tries=task.retries,
            logical_date=self.info.logical_date,
            hostname=self.hostname,
            xcom_reader=DbXComReader(self.factory),
        )
        context = build_context(
            dag=self.dag, task=task, ti=ti, dag_run=self.info, params=self.params
        )
        context["reason"] = "success" if success else (reason or "task_failure")
        set_backend(DatabaseBackend(self.factory, self.fernet))  # for Variable/Connection
        try:
            run_callbacks(callbacks, context, "DAG on_success" if success else "DAG on_failure")
        finally:
            set_backend(None)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _retry_pending(states: dict[str, TaskInstanceState]) -> bool:
    return any(s == _S.UP_FOR_RETRY for s in states.values())
