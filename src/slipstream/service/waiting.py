"""Why has this task not started? One plain sentence per reason, for the UI and the API.

The answers come from the scheduler's own pure decisions (:mod:`slipstream.decisions`):
trigger rules and depends_on_past through :func:`decide_ready`, pools, ``max_active_tasks``
and ``parallelism`` through :func:`select_to_queue`, the run's timeout through
:func:`dagrun_timed_out`. :func:`explain_waiting` reads the facts in one read transaction;
:func:`reasons` and the functions it calls turn plain facts into sentences, with no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import ensure_utc
from slipstream.config import Config, CoreConfig, SchedulerConfig
from slipstream.decisions import (
    QueueCandidate,
    TaskNode,
    Verdict,
    dagrun_timed_out,
    decide_ready,
    select_to_queue,
)
from slipstream.errors import TaskNotFound
from slipstream.serialization import SerializedDag
from slipstream.service.inspection import require_run
from slipstream.states import DagRunState, DagRunType, TaskInstanceState
from slipstream.store import dags as dag_store
from slipstream.store import jobs, scheduling
from slipstream.store import overview as overview_store
from slipstream.store import pools as pool_store
from slipstream.store import queue as queue_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import transaction
from slipstream.store.task_instances import TIKey

_S = TaskInstanceState
_OK_IN_PAST = (None, _S.SUCCESS, _S.SKIPPED)


@dataclass(frozen=True)
class RunFacts:
    dag_id: str
    run_id: str
    state: DagRunState
    #: the DAG is paused, and that holds this run (a backfill's runs proceed while paused)
    held_by_pause: bool
    #: ``slipstream dags test`` drives the run, not the scheduler
    driven_by_test: bool
    running_runs: int
    max_active_runs: int
    start_date: datetime | None = None
    dagrun_timeout: timedelta | None = None


@dataclass(frozen=True)
class TaskFacts:
    task_id: str
    state: TaskInstanceState
    try_number: int
    queue: str
    next_retry_at: datetime | None = None


@dataclass(frozen=True)
class DependencyFacts:
    """The run's tasks and states, and the previous run's (for depends_on_past)."""

    nodes: Mapping[str, TaskNode]
    states: Mapping[str, TaskInstanceState]
    past_states: Mapping[str, TaskInstanceState | None] | None = None
    previous_run_id: str | None = None


@dataclass(frozen=True)
class QueueFacts:
    """What the scheduler's queueing step sees: the task as a candidate among the others."""

    mine: QueueCandidate
    candidates: Sequence[QueueCandidate]
    #: every pool's size; a pool missing here does not exist
    pool_sizes: Mapping[str, int]
    pool_open: Mapping[str, int]
    run_open: Mapping[tuple[str, str], int]
    max_active_tasks: int
    parallelism: int
    parallel_open: int


@dataclass(frozen=True)
class WaitFacts:
    task: TaskFacts
    run: RunFacts
    dependencies: DependencyFacts | None = None
    queueing: QueueFacts | None = None
    #: the queues each live worker serves
    worker_queues: Sequence[Sequence[str]] = field(default_factory=list)


def reasons(facts: WaitFacts, *, now: datetime) -> list[str]:
    """Why the task has not started; empty when it runs or has finished."""
    task, run = facts.task, facts.run
    if task.state == _S.RUNNING or task.state.is_finished:
        return []
    if run.state.is_finished:
        return [
            f"run {run.run_id!r} has ended ({run.state}): its unfinished tasks run again only "
            "if they are cleared"
        ]
    if task.state == _S.RESTARTING:
        return [
            "the task was cleared while it ran: it starts again once its worker has stopped "
            "the old try"
        ]
    if task.state == _S.QUEUED:
        # Workers claim queued tries whatever the DAG's or the run's state.
        return worker_reasons(task.queue, facts.worker_queues)
    found = run_reasons(run, now=now)
    if run.state == DagRunState.QUEUED:
        return found
    if facts.dependencies is not None and task.state in (_S.NONE, _S.UP_FOR_RETRY):
        found += dependency_reasons(task, facts.dependencies, now=now)
    if facts.queueing is not None and task.state == _S.SCHEDULED:
        found += queueing_reasons(facts.queueing)
    return found


def run_reasons(run: RunFacts, *, now: datetime) -> list[str]:
    found = []
    if run.driven_by_test:
        found.append(
            f"run {run.run_id!r} belongs to `slipstream dags test`: the scheduler leaves it "
            "alone, and it moves on only while that command runs"
        )
    if run.held_by_pause:
        found.append(
            f"DAG {run.dag_id!r} is paused: the scheduler moves none of its runs on until it "
            "is unpaused"
        )
    if run.state == DagRunState.QUEUED:
        if run.running_runs >= run.max_active_runs:
            found.append(
                f"the run is queued behind max_active_runs: {run.running_runs} of "
                f"{run.max_active_runs} runs of DAG {run.dag_id!r} are running"
            )
        elif not run.held_by_pause:
            found.append("the run is queued: the scheduler starts it at its next pass")
    elif dagrun_timed_out(run.start_date, run.dagrun_timeout, now):
        found.append(
            f"the run has exceeded its dagrun_timeout of {run.dagrun_timeout}: the scheduler "
            "fails it at its next pass"
        )
    return found


def dependency_reasons(task: TaskFacts, deps: DependencyFacts, *, now: datetime) -> list[str]:
    """Why a task in state none or up_for_retry is not scheduled yet."""
    node = deps.nodes.get(task.task_id)
    if node is None:
        return [f"task {task.task_id!r} is not in the DAG version this run uses"]
    if task.state == _S.UP_FOR_RETRY and task.next_retry_at is not None:
        due = ensure_utc(task.next_retry_at)
        if due > ensure_utc(now):
            return [
                f"try {task.try_number} failed: the next try is due at "
                f"{due:%Y-%m-%d %H:%M:%S} UTC (in {_span(due - ensure_utc(now))})"
            ]
    retry_at = {task.task_id: task.next_retry_at}
    states = dict(deps.states)
    ignoring_past = decide_ready(deps.nodes, states, now=now, next_retry_at=retry_at)
    verdict = decide_ready(
        deps.nodes, states, now=now, next_retry_at=retry_at, past_states=deps.past_states
    ).get(task.task_id)
    if ignoring_past.get(task.task_id) == Verdict.WAIT:
        return [_upstream_reason(node, states)]
    if verdict == Verdict.WAIT:
        return _past_reasons(node, deps)
    action = {
        Verdict.RUN: "schedules it",
        Verdict.SKIP: "skips it",
        Verdict.UPSTREAM_FAILED: "marks it upstream_failed",
    }
    if verdict in action:
        return [f"its dependencies are decided: the scheduler {action[verdict]} at its next pass"]
    return []


def _upstream_reason(node: TaskNode, states: Mapping[str, TaskInstanceState]) -> str:
    pending = [u for u in sorted(node.upstream) if not states.get(u, _S.NONE).is_finished]
    listed = ", ".join(f"{u!r} ({states.get(u, _S.NONE)})" for u in pending)
    rule = f" (trigger rule {node.trigger_rule})" if node.trigger_rule != "all_success" else ""
    if pending:
        return f"upstream tasks are not done yet{rule}: {listed}"
    return f"its trigger rule {node.trigger_rule} is not met by its upstream tasks yet"


def _past_reasons(node: TaskNode, deps: DependencyFacts) -> list[str]:
    past = deps.past_states or {}
    previous = f"the previous run {deps.previous_run_id!r}"
    found = []
    if past.get(node.task_id) not in _OK_IN_PAST:
        found.append(
            f"depends_on_past: the task has not succeeded in {previous} "
            f"(it is {past.get(node.task_id)})"
        )
    if node.wait_for_downstream:
        downstream = sorted(t for t, n in deps.nodes.items() if node.task_id in n.upstream)
        pending = [d for d in downstream if past.get(d) not in _OK_IN_PAST]
        if pending:
            listed = ", ".join(f"{d!r} ({past.get(d)})" for d in pending)
            found.append(
                f"wait_for_downstream: its downstream tasks in {previous} are not done: {listed}"
            )
    return found or [f"depends_on_past: waiting on {previous}"]


def queueing_reasons(facts: QueueFacts) -> list[str]:
    """Why a scheduled task is not queued yet: the limits :func:`select_to_queue` applies."""
    mine = facts.mine
    found = []
    size = facts.pool_sizes.get(mine.pool)
    if size is None:
        found.append(
            f"pool {mine.pool!r} does not exist: its tasks wait until it is created "
            f"(`slipstream pools set {mine.pool} SLOTS`)"
        )
    elif facts.pool_open.get(mine.pool, 0) < mine.pool_slots:
        used = size - facts.pool_open.get(mine.pool, 0)
        found.append(
            f"pool {mine.pool!r} is full: {used} of {size} slots are in use and the task "
            f"needs {mine.pool_slots}"
        )
    run_open = facts.run_open.get(mine.run, 0)
    if run_open < 1:
        found.append(
            f"the run has reached its max_active_tasks of {facts.max_active_tasks}: "
            f"{facts.max_active_tasks - run_open} of its tasks are queued or running"
        )
    if facts.parallel_open < 1:
        found.append(
            f"the installation is at its parallelism of {facts.parallelism}: that many tasks "
            "are queued or running (scheduler.parallelism)"
        )
    if found:
        return found
    others = [c for c in facts.candidates if c.ti_id != mine.ti_id]
    chosen = select_to_queue(
        [*others, mine],
        pool_open=facts.pool_open,
        run_open=facts.run_open,
        parallel_open=facts.parallel_open,
    )
    if any(c.ti_id == mine.ti_id for c in chosen):
        return ["it is ready and there is room: the scheduler queues it at its next pass"]
    return [
        "tasks of higher priority (or of older runs) take the open slots first: it is queued "
        "when room frees up"
    ]


def worker_reasons(queue: str, worker_queues: Sequence[Sequence[str]]) -> list[str]:
    """Why a queued try has not started: who serves its queue."""
    serving = sum(1 for queues in worker_queues if queue in queues)
    command = "slipstream worker" + ("" if queue == "default" else f" --queues {queue}")
    if not worker_queues:
        return [f"it is queued for queue {queue!r}, but no worker is running (`{command}`)"]
    if not serving:
        served = sorted({q for queues in worker_queues for q in queues})
        return [
            f"it is queued for queue {queue!r}, which no live worker serves (they serve "
            f"{', '.join(repr(q) for q in served)}): start one with `{command}`"
        ]
    workers = "1 live worker" if serving == 1 else f"{serving} live workers"
    return [
        f"it is queued for queue {queue!r}, served by {workers}: it starts when one of them "
        "has a free slot (worker.concurrency)"
    ]


def _span(delta: timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    parts.append(f"{seconds} s" if seconds or not (hours or minutes) else "")
    return " ".join(p for p in parts if p)


# --- reading the facts ----------------------------------------------------------------


def explain_waiting(
    factory: sessionmaker[Session],
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    now: datetime,
    config: Config | None = None,
) -> list[str]:
    """One sentence per reason why a task instance has not started (empty once it runs or
    has finished). ``config`` gives the limits and timeouts (defaults when None)."""
    core = config.core if config is not None else CoreConfig()
    limits = config.scheduler if config is not None else SchedulerConfig()
    with transaction(factory, readonly=True) as session:
        run = require_run(session, dag_id, run_id)
        ti = ti_store.get(session, TIKey(dag_id, run_id, task_id))
        if ti is None:
            raise _task_not_found(session, dag_id, run_id, task_id)
        task = TaskFacts(task_id, _S(ti.state), ti.try_number, ti.queue, ti.next_retry_at)
        if task.state == _S.RUNNING or task.state.is_finished:
            return []
        dag_row = dag_store.get(session, dag_id)
        version = (
            dag_store.get_version(session, run.dag_version_id) if run.dag_version_id else None
        ) or dag_store.latest_version(session, dag_id)
        dag = SerializedDag.from_dict(version.data) if version is not None else None
        counts = scheduling.active_run_counts(session).get(dag_id, {})
        run_facts = RunFacts(
            dag_id=dag_id,
            run_id=run_id,
            state=DagRunState(run.state),
            held_by_pause=bool(dag_row and dag_row.is_paused)
            and run.run_type != DagRunType.BACKFILL.value
            and run.triggered_by != scheduling.BACKFILL_TRIGGER,
            driven_by_test=run.triggered_by == scheduling.TEST_TRIGGER,
            running_runs=counts.get(DagRunState.RUNNING.value, 0),
            max_active_runs=(dag.max_active_runs if dag else None) or core.max_active_runs_per_dag,
            start_date=run.start_date,
            dagrun_timeout=dag.dagrun_timeout if dag else None,
        )
        deps = queueing = None
        workers: list[list[str]] = []
        if task.state in (_S.NONE, _S.UP_FOR_RETRY) and dag is not None:
            deps = _dependency_facts(session, dag, run_id, task_id, run.logical_date)
        elif task.state == _S.SCHEDULED:
            order = (run.logical_date.isoformat() if run.logical_date else "",)
            mine = QueueCandidate(
                ti.id, (dag_id, run_id), ti.pool, ti.pool_slots, ti.priority_weight, order
            )
            run_limit = (dag.max_active_tasks if dag else None) or core.max_active_tasks_per_dag
            queueing = _queue_facts(session, mine, run_limit, core, limits.parallelism)
        elif task.state == _S.QUEUED:
            live = jobs.live(session, "worker", now=now, timeout=limits.task_heartbeat_timeout)
            workers = [[q.strip() for q in (j.detail or "").split(",") if q.strip()] for j in live]
    return reasons(WaitFacts(task, run_facts, deps, queueing, workers), now=now)


def _task_not_found(session: Session, dag_id: str, run_id: str, task_id: str) -> TaskNotFound:
    message = f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}"
    known = [t.task_id for t in ti_store.list_for_run(session, dag_id, run_id)]
    close = difflib.get_close_matches(task_id, known, n=3)
    if close:
        message += f"; did you mean {', '.join(repr(c) for c in close)}?"
    return TaskNotFound(message)


def _dependency_facts(
    session: Session, dag: SerializedDag, run_id: str, task_id: str, logical_date: datetime | None
) -> DependencyFacts:
    # As the scheduler's evaluate_run: the run's rows, the tasks of its DAG version.
    rows = scheduling.ti_states(session, dag.dag_id, run_id)
    nodes = {t: n for t, n in dag.task_nodes().items() if t in rows}
    states = {t: _S(rows[t][0]) for t in nodes}
    node = nodes.get(task_id)
    if node is None or not (node.depends_on_past or node.wait_for_downstream):
        return DependencyFacts(nodes, states)
    previous = (
        overview_store.previous_run(session, dag.dag_id, logical_date) if logical_date else None
    )
    if previous is None:
        return DependencyFacts(nodes, states)
    previous_id, past = previous
    return DependencyFacts(nodes, states, {t: _S(s) for t, s in past.items()}, previous_id)


def _queue_facts(
    session: Session, mine: QueueCandidate, run_limit: int, core: CoreConfig, parallelism: int
) -> QueueFacts:
    # As the scheduler's _queue: the same candidates, usage and limits.
    scheduled = queue_store.scheduled(session, limit=max(parallelism * 4, 64))
    usage = queue_store.in_flight(session)
    sizes = pool_store.slot_counts(session)
    pool_open = {name: slots - usage.pool_slots.get(name, 0) for name, slots in sizes.items()}
    version_limits: dict[int | None, int] = {}

    def limit_of(version_id: int | None) -> int:
        if version_id not in version_limits:
            version = dag_store.get_version(session, version_id) if version_id else None
            own = version.data.get("max_active_tasks") if version is not None else None
            version_limits[version_id] = own or core.max_active_tasks_per_dag
        return version_limits[version_id]

    run_open: dict[tuple[str, str], int] = {}
    candidates = []
    for c in scheduled:
        key = (c.ref.dag_id, c.ref.run_id)
        run_open.setdefault(key, limit_of(c.dag_version_id) - usage.by_run.get(key, 0))
        order = (c.logical_date.isoformat() if c.logical_date else "",)
        candidates.append(
            QueueCandidate(
                c.ref.ti_id, key, c.ref.pool, c.ref.pool_slots, c.ref.priority_weight, order
            )
        )
    run_open.setdefault(mine.run, run_limit - usage.by_run.get(mine.run, 0))
    return QueueFacts(
        mine=mine,
        candidates=candidates,
        pool_sizes=sizes,
        pool_open=pool_open,
        run_open=run_open,
        max_active_tasks=run_limit,
        parallelism=parallelism,
        parallel_open=parallelism - usage.total,
    )
