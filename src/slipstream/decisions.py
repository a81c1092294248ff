"""The pure scheduling decisions: which tasks may run, retry timing, how a run ends.

Plain values in, plain values out, no clock and no I/O: the in-process runner
(``slipstream dags test``) and the scheduler read state from wherever they keep it, ask
these functions, and write the answers back. Trigger rules follow Airflow's
``trigger_rule_dep.py`` rule for rule, except that REMOVED upstreams are left out
entirely (Airflow counts them in the upstream total, which can stall ``all_success``).
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from slipstream.clock import ensure_utc
from slipstream.errors import BranchError, CycleError
from slipstream.states import FINISHED_TI_STATES, DagRunState, TaskInstanceState
from slipstream.trigger_rule import TriggerRule

__all__ = [
    "MAX_RETRY_DELAY",
    "QueueCandidate",
    "RetryPolicy",
    "TaskNode",
    "Verdict",
    "branch_skips",
    "dag_run_outcome",
    "dagrun_timed_out",
    "decide_ready",
    "descendants",
    "evaluate_trigger_rule",
    "execution_deadline",
    "next_retry_at",
    "retry_due",
    "select_to_queue",
    "short_circuit_skips",
    "should_retry",
    "state_after_failure",
    "topological_order",
]

_S = TaskInstanceState
TR = TriggerRule

#: Ceiling of an exponential backoff when the task sets no ``max_retry_delay`` (Airflow's
#: ``core.max_task_retry_delay`` default).
MAX_RETRY_DELAY = timedelta(hours=24)

# Work that is already in someone's hands: a run holding any of these is not stuck.
_IN_FLIGHT = frozenset({_S.SCHEDULED, _S.QUEUED, _S.RUNNING, _S.RESTARTING, _S.UP_FOR_RETRY})


@dataclass(frozen=True)
class TaskNode:
    """What the decisions need to know of one task: its edges and its rules."""

    task_id: str
    upstream: frozenset[str]
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    depends_on_past: bool = False
    wait_for_downstream: bool = False


class Verdict(StrEnum):
    RUN = "run"  #: dependencies met: schedule it
    WAIT = "wait"  #: not yet decidable
    SKIP = "skip"  #: the rule can no longer be met, and that means skipped
    UPSTREAM_FAILED = "upstream_failed"  #: the rule can no longer be met because of a failure


def evaluate_trigger_rule(
    rule: TriggerRule, upstream_states: Sequence[TaskInstanceState]
) -> Verdict:
    """Verdict of ``rule`` given the states of a task's direct upstream tasks.

    The "can no longer be met" branches come first, as in Airflow, where they set the
    task's state before the rule is checked as a dependency.
    """
    counts = Counter(s for s in upstream_states if s != _S.REMOVED)
    total = sum(counts.values())
    if total == 0 or rule == TR.ALWAYS:
        return Verdict.RUN
    success, skipped = counts[_S.SUCCESS], counts[_S.SKIPPED]
    failed, upstream_failed = counts[_S.FAILED], counts[_S.UPSTREAM_FAILED]
    any_failed = failed + upstream_failed > 0
    done = success + skipped + failed + upstream_failed
    all_done = done == total

    def run_if(met: bool) -> Verdict:
        return Verdict.RUN if met else Verdict.WAIT

    match rule:
        case TR.ALL_SUCCESS:
            if any_failed:
                return Verdict.UPSTREAM_FAILED
            if skipped:
                return Verdict.SKIP
            return run_if(success == total)
        case TR.ALL_FAILED:
            if success or skipped:
                return Verdict.SKIP
            return run_if(all_done)
        case TR.ALL_DONE:
            return run_if(all_done)
        case TR.ALL_SKIPPED:
            if success or any_failed:
                return Verdict.SKIP
            return run_if(skipped == total)
        case TR.ONE_SUCCESS:
            if all_done and skipped == total:
                return Verdict.SKIP
            if all_done and not success:
                return Verdict.UPSTREAM_FAILED
            return run_if(success > 0)
        case TR.ONE_FAILED:
            if all_done and not any_failed:
                return Verdict.SKIP
            return run_if(any_failed)
        case TR.ONE_DONE:
            # Airflow counts only success and failed as "done" here: an upstream_failed or
            # skipped upstream never ran, so it neither triggers nor is waited on.
            if all_done and not (success or failed):
                return Verdict.SKIP
            return run_if(success + failed > 0)
        case TR.NONE_FAILED:
            if any_failed:
                return Verdict.UPSTREAM_FAILED
            return run_if(all_done)
        case TR.NONE_FAILED_MIN_ONE_SUCCESS:
            if any_failed:
                return Verdict.UPSTREAM_FAILED
            if skipped == total:
                return Verdict.SKIP
            return run_if(all_done)
        case TR.NONE_SKIPPED:
            if skipped:
                return Verdict.SKIP
            return run_if(all_done)
    raise ValueError(f"unknown trigger rule {rule!r}")  # pragma: no cover - enum is closed


def _past_met(
    node: TaskNode,
    nodes: Mapping[str, TaskNode],
    past_states: Mapping[str, TaskInstanceState | None] | None,
) -> bool:
    """depends_on_past / wait_for_downstream, judged on the previous run's states.

    No previous run, or a task absent from it, does not hold a task back (Airflow lets the
    first run and newly added tasks through).
    """
    if not (node.depends_on_past or node.wait_for_downstream) or past_states is None:
        return True
    ok = (None, _S.SUCCESS, _S.SKIPPED)
    if past_states.get(node.task_id) not in ok:
        return False
    if node.wait_for_downstream:
        # The previous run's direct downstream tasks must be done too, so that this try
        # does not overwrite what they have yet to read.
        downstream = [n.task_id for n in nodes.values() if node.task_id in n.upstream]
        return all(past_states.get(d) in ok for d in downstream)
    return True


def decide_ready(
    nodes: Mapping[str, TaskNode],
    states: Mapping[str, TaskInstanceState],
    *,
    now: datetime,
    next_retry_at: Mapping[str, datetime | None] | None = None,
    past_states: Mapping[str, TaskInstanceState | None] | None = None,
) -> dict[str, Verdict]:
    """What to do now with each task that awaits a decision.

    Considered: tasks in NONE (a task missing from ``states`` counts as NONE) and tasks
    UP_FOR_RETRY whose ``next_retry_at`` has passed (a missing or None time means due
    now). A retry only ever gets RUN or WAIT: it ran once, so its upstreams were met.
    A task held back by depends_on_past WAITs instead of running or being skipped
    (Airflow's "wait for past depends before skipping"); a failure still propagates.
    """
    now = ensure_utc(now)
    retry_at = next_retry_at or {}
    verdicts: dict[str, Verdict] = {}
    for task_id in sorted(nodes):
        node = nodes[task_id]
        state = states.get(task_id, _S.NONE)
        if state == _S.UP_FOR_RETRY:
            due = retry_at.get(task_id)
            if due is not None and ensure_utc(due) > now:
                continue
        elif state != _S.NONE:
            continue
        upstream = [states.get(u, _S.NONE) for u in sorted(node.upstream)]
        verdict = evaluate_trigger_rule(node.trigger_rule, upstream)
        if state == _S.UP_FOR_RETRY and verdict != Verdict.RUN:
            verdict = Verdict.WAIT
        if verdict in (Verdict.RUN, Verdict.SKIP) and not _past_met(node, nodes, past_states):
            verdict = Verdict.WAIT
        verdicts[task_id] = verdict
    return verdicts


def descendants(downstream: Mapping[str, Collection[str]], task_id: str) -> set[str]:
    """Every task downstream of ``task_id``, directly or not (``task_id`` itself excluded).

    ``downstream`` maps each task to the ids of its direct downstream tasks.
    """
    found: set[str] = set()
    stack = list(downstream.get(task_id, ()))
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(downstream.get(current, ()))
    return found


def branch_skips(
    task_id: str, downstream: Mapping[str, Collection[str]], chosen: Iterable[str]
) -> set[str]:
    """The tasks that branch task ``task_id`` skips when it chooses ``chosen`` (maybe none).

    ``downstream`` maps every task of the DAG to its direct downstream task ids. The
    branch's direct downstream tasks that were not chosen are skipped; what lies beyond
    them is left to trigger rules. As in Airflow, a direct downstream task that is also
    downstream of a chosen one is not skipped: with ``branch >> [a, join]`` and
    ``a >> join``, choosing ``a`` lets ``join`` run after it. A chosen id that is not a
    direct downstream task raises BranchError (Airflow accepts any task of the DAG there,
    which silently skips every path; see docs/architecture.md).
    """
    direct = set(downstream.get(task_id, ()))
    picked = set(chosen)
    options = f"its direct downstream tasks are {_quoted(direct) or 'none'}"
    missing = picked - downstream.keys()
    if missing:
        raise BranchError(
            f"branch task {task_id!r} chose {_quoted(missing)}, not a task of the DAG; {options}"
        )
    indirect = picked - direct
    if indirect:
        raise BranchError(
            f"branch task {task_id!r} chose {_quoted(indirect)}, not directly downstream of "
            f"it; {options}"
        )
    followed = set().union(*(descendants(downstream, t) for t in picked))
    return direct - picked - followed


def short_circuit_skips(
    task_id: str,
    downstream: Mapping[str, Collection[str]],
    *,
    ignore_downstream_trigger_rules: bool,
) -> set[str]:
    """The tasks a short-circuit task skips when its condition is falsy.

    Every task downstream of it by default (trigger rules ignored, as in Airflow); only
    the direct downstream tasks when ``ignore_downstream_trigger_rules`` is False, so the
    trigger rules of the tasks beyond them decide (``all_done`` still runs, for example).
    """
    if ignore_downstream_trigger_rules:
        return descendants(downstream, task_id)
    return set(downstream.get(task_id, ()))


def _quoted(task_ids: Iterable[str]) -> str:
    return ", ".join(repr(t) for t in sorted(task_ids))


def should_retry(*, try_number: int, max_tries: int) -> bool:
    """Whether a try that just failed (1-based ``try_number``) gets another, given ``retries``."""
    return max_tries > 0 and try_number <= max_tries


def state_after_failure(*, try_number: int, max_tries: int) -> TaskInstanceState:
    """up_for_retry or failed, for a try that failed without deciding so itself (it died,
    timed out, was stopped or lost its worker)."""
    retry = should_retry(try_number=try_number, max_tries=max_tries)
    return _S.UP_FOR_RETRY if retry else _S.FAILED


def next_retry_at(
    *,
    try_number: int,
    finished_at: datetime,
    retry_delay: timedelta,
    exponential_backoff: bool,
    max_retry_delay: timedelta | None,
    key: str,
) -> datetime:
    """When the retry after failed try ``try_number`` becomes due.

    Exponential backoff follows Airflow: the base is ``retry_delay * 2**(try_number-1)``
    rounded up to whole seconds (at least 1 s), plus a jitter in ``[0, base)`` drawn from a
    hash of ``key`` and the try, so every scheduler computes the same instant while many
    failing tasks still spread out. The result is capped by ``max_retry_delay`` (24 h
    when none is given).
    """
    finished_at = ensure_utc(finished_at)
    if not exponential_backoff:
        return finished_at + retry_delay
    cap = max_retry_delay if max_retry_delay is not None else MAX_RETRY_DELAY
    cap_seconds = math.ceil(cap.total_seconds())
    # Stop doubling once past the cap: the exponent can otherwise grow without bound
    # (a task cleared many times keeps its try count).
    exponent = max(try_number - 1, 0)
    scaled = retry_delay.total_seconds()
    while exponent and scaled <= cap_seconds:
        scaled, exponent = scaled * 2, exponent - 1
    base = max(math.ceil(scaled), 1)
    digest = hashlib.sha1(f"{key}#{try_number}".encode(), usedforsecurity=False).hexdigest()
    seconds = min(base + int(digest, 16) % base, cap_seconds)
    return finished_at + min(timedelta(seconds=seconds), cap)


class RetryPolicy(Protocol):
    """A task's retry settings, live (an operator) or serialized."""

    @property
    def retry_delay(self) -> timedelta: ...
    @property
    def retry_exponential_backoff(self) -> bool: ...
    @property
    def max_retry_delay(self) -> timedelta | None: ...


def retry_due(
    task: RetryPolicy,
    *,
    try_number: int,
    finished_at: datetime,
    dag_id: str,
    task_id: str,
    run_id: str,
) -> datetime:
    """:func:`next_retry_at` with ``task``'s settings, jittered by the try's identity."""
    return next_retry_at(
        try_number=try_number,
        finished_at=finished_at,
        retry_delay=task.retry_delay,
        exponential_backoff=task.retry_exponential_backoff,
        max_retry_delay=task.max_retry_delay,
        key=f"{dag_id}.{task_id}.{run_id}",
    )


def retry_time(
    state: TaskInstanceState,
    task: RetryPolicy | None,
    *,
    try_number: int,
    finished_at: datetime,
    dag_id: str,
    task_id: str,
    run_id: str,
) -> datetime | None:
    """When a try that ended in ``state`` may run again: :func:`retry_due` for an
    up_for_retry try whose task is known, None otherwise. The one rule for every place that
    ends a try (the worker, ``dags test``, the scheduler's lost-try check)."""
    if state != TaskInstanceState.UP_FOR_RETRY or task is None:
        return None
    return retry_due(
        task,
        try_number=try_number,
        finished_at=finished_at,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
    )


def execution_deadline(start: datetime, execution_timeout: timedelta | None) -> datetime | None:
    """When a try that started at ``start`` must be stopped, or None if it may run forever."""
    if execution_timeout is None:
        return None
    return ensure_utc(start) + execution_timeout


def _leaves(nodes: Mapping[str, TaskNode]) -> list[str]:
    has_downstream = {u for node in nodes.values() for u in node.upstream}
    return [t for t in nodes if t not in has_downstream]


def dag_run_outcome(
    nodes: Mapping[str, TaskNode], states: Mapping[str, TaskInstanceState]
) -> DagRunState | None:
    """How the run ends, or None while its unfinished tasks can still progress.

    Like Airflow, the run is judged by its leaves once every task has finished: any leaf
    failed or upstream_failed fails it, else it succeeds (removed leaves are ignored). A
    run whose unfinished tasks are all waiting, with nothing in flight and nothing the
    trigger rules would run, skip or fail, is deadlocked and fails. depends_on_past is not
    considered here: the previous run may still finish, or be cleared, and free it.
    """
    current = {t: states.get(t, _S.NONE) for t in nodes}
    unfinished = [t for t, s in current.items() if s not in FINISHED_TI_STATES]
    if not unfinished:
        leaf_states = [current[t] for t in _leaves(nodes) if current[t] != _S.REMOVED]
        if any(s in (_S.FAILED, _S.UPSTREAM_FAILED) for s in leaf_states):
            return DagRunState.FAILED
        return DagRunState.SUCCESS
    if any(current[t] in _IN_FLIGHT for t in unfinished):
        return None
    for task_id in unfinished:
        upstream = [current.get(u, _S.NONE) for u in nodes[task_id].upstream]
        if evaluate_trigger_rule(nodes[task_id].trigger_rule, upstream) != Verdict.WAIT:
            return None
    return DagRunState.FAILED


def topological_order(nodes: Mapping[str, TaskNode]) -> list[str]:
    """Tasks with every upstream before its downstream; peers ordered by task_id.

    Upstream ids that are not in ``nodes`` are ignored. A cycle raises CycleError naming
    it, e.g. ``cycle in DAG: a -> b -> c -> a``.
    """
    downstream: dict[str, list[str]] = {t: [] for t in nodes}
    waiting: dict[str, int] = {}
    for task_id, node in nodes.items():
        known = [u for u in node.upstream if u in nodes]
        waiting[task_id] = len(known)
        for u in known:
            downstream[u].append(task_id)
    ready = [t for t, n in waiting.items() if n == 0]
    heapq.heapify(ready)  # a heap keeps "smallest task_id first" among the ready peers
    order: list[str] = []
    while ready:
        task_id = heapq.heappop(ready)
        order.append(task_id)
        for d in downstream[task_id]:
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, d)
    if len(order) < len(nodes):
        raise CycleError(f"cycle in DAG: {' -> '.join(_find_cycle(nodes, set(order)))}")
    return order


def _find_cycle(nodes: Mapping[str, TaskNode], acyclic: set[str]) -> list[str]:
    """One cycle among the tasks Kahn's algorithm could not order, as ``[a, b, ..., a]``.

    Every such task has an upstream that is also left over, so walking upstream from one
    must revisit a task; the walk reversed reads in the direction of the edges.
    """
    left = {t for t in nodes if t not in acyclic}
    start = min(left)
    path: list[str] = []
    seen: dict[str, int] = {}
    current = start
    while current not in seen:
        seen[current] = len(path)
        path.append(current)
        current = min(u for u in nodes[current].upstream if u in left)
    cycle = [*path[seen[current] :], current]
    cycle.reverse()  # upstream walk -> downstream order
    # Start at the smallest task id so the message is the same however it was found.
    body = cycle[:-1]
    first = body.index(min(body))
    body = body[first:] + body[:first]
    return [*body, body[0]]


# --- what to queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueCandidate:
    """A scheduled task instance waiting for room to be queued."""

    ti_id: int
    run: tuple[str, str]  #: (dag_id, run_id)
    pool: str
    pool_slots: int
    priority_weight: int
    #: tie-breaker among equal priorities: older runs first, then a stable order
    order: tuple[str, ...] = ()


def select_to_queue(
    candidates: Iterable[QueueCandidate],
    *,
    pool_open: Mapping[str, int],
    run_open: Mapping[tuple[str, str], int],
    parallel_open: int,
) -> list[QueueCandidate]:
    """Which candidates to queue now, highest priority first, within every limit.

    ``pool_open`` gives each pool's open slots (a pool missing from it does not exist, and
    its tasks wait); ``run_open`` how many more task instances each run may have queued or
    running (``max_active_tasks``, which Airflow 3 counts per DAG run); ``parallel_open``
    how many more the whole installation may. As in Airflow, a candidate that does not fit
    its pool or its run is passed over and the next one is considered, so one full pool
    does not hold back the others.
    """
    pools = dict(pool_open)
    runs = dict(run_open)
    chosen: list[QueueCandidate] = []
    for candidate in sorted(candidates, key=lambda c: (-c.priority_weight, c.order, c.ti_id)):
        if len(chosen) >= parallel_open:
            break
        if pools.get(candidate.pool, 0) < candidate.pool_slots:
            continue
        if runs.get(candidate.run, 0) < 1:
            continue
        pools[candidate.pool] -= candidate.pool_slots
        runs[candidate.run] -= 1
        chosen.append(candidate)
    return chosen


def dagrun_timed_out(start: datetime | None, timeout: timedelta | None, now: datetime) -> bool:
    """Whether a run that started at ``start`` has run past its ``dagrun_timeout``."""
    if start is None or timeout is None:
        return False
    return ensure_utc(now) - ensure_utc(start) > timeout
