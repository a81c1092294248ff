"""Why a task has not started, from plain facts: the pure part of ``service.waiting``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from slipstream.decisions import QueueCandidate, TaskNode
from slipstream.service.waiting import (
    DependencyFacts,
    QueueFacts,
    RunFacts,
    TaskFacts,
    WaitFacts,
    dependency_reasons,
    queueing_reasons,
    reasons,
    run_reasons,
    worker_reasons,
)
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.trigger_rule import TriggerRule

S = TaskInstanceState
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
RUN = ("d", "r")


def run(state: DagRunState = DagRunState.RUNNING, **changes: object) -> RunFacts:
    facts: dict[str, object] = {
        "dag_id": "d",
        "run_id": "r",
        "state": state,
        "held_by_pause": False,
        "driven_by_test": False,
        "running_runs": 1,
        "max_active_runs": 16,
    }
    facts.update(changes)
    return RunFacts(**facts)  # type: ignore[arg-type]


def task(state: S = S.NONE, task_id: str = "t", **changes: object) -> TaskFacts:
    return TaskFacts(task_id, state, int(changes.pop("try_number", 0)), "default", **changes)  # type: ignore[arg-type]


def node(task_id: str, *upstream: str, **kwargs: object) -> TaskNode:
    return TaskNode(task_id, frozenset(upstream), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "state", [S.RUNNING, S.SUCCESS, S.FAILED, S.SKIPPED, S.UPSTREAM_FAILED, S.REMOVED]
)
def test_running_or_finished_tasks_wait_for_nothing(state: S) -> None:
    assert reasons(WaitFacts(task(state), run(held_by_pause=True)), now=NOW) == []


def test_a_restarting_task_waits_for_its_old_try_to_stop() -> None:
    (why,) = reasons(WaitFacts(task(S.RESTARTING), run()), now=NOW)
    assert why.startswith("the task was cleared while it ran")


def test_run_reasons() -> None:
    assert run_reasons(run(), now=NOW) == []
    queued = run(DagRunState.QUEUED, held_by_pause=True, running_runs=0)
    assert run_reasons(queued, now=NOW) == [
        "DAG 'd' is paused: the scheduler moves none of its runs on until it is unpaused"
    ]
    full = run(DagRunState.QUEUED, running_runs=2, max_active_runs=2)
    assert run_reasons(full, now=NOW) == [
        "the run is queued behind max_active_runs: 2 of 2 runs of DAG 'd' are running"
    ]
    late = run(start_date=NOW - timedelta(hours=2), dagrun_timeout=timedelta(hours=1))
    assert run_reasons(late, now=NOW) == [
        "the run has exceeded its dagrun_timeout of 1:00:00: the scheduler fails it at its "
        "next pass"
    ]
    (why,) = run_reasons(run(driven_by_test=True), now=NOW)
    assert why.startswith("run 'r' belongs to `slipstream dags test`")


def test_a_queued_run_hides_the_task_level_reasons() -> None:
    deps = DependencyFacts({"t": node("t", "u"), "u": node("u")}, {"t": S.NONE, "u": S.NONE})
    facts = WaitFacts(task(), run(DagRunState.QUEUED, running_runs=0), dependencies=deps)
    assert reasons(facts, now=NOW) == [
        "the run is queued: the scheduler starts it at its next pass"
    ]


def test_upstream_tasks_are_named_with_their_states_and_the_rule() -> None:
    nodes = {
        "t": node("t", "a", "b", "c", trigger_rule=TriggerRule.ONE_SUCCESS),
        "a": node("a"),
        "b": node("b"),
        "c": node("c"),
    }
    states = {"t": S.NONE, "a": S.FAILED, "b": S.RUNNING, "c": S.UP_FOR_RETRY}
    assert dependency_reasons(task(), DependencyFacts(nodes, states), now=NOW) == [
        "upstream tasks are not done yet (trigger rule one_success): 'b' (running), "
        "'c' (up_for_retry)"
    ]


def test_decided_tasks_wait_for_the_schedulers_next_pass() -> None:
    nodes = {"t": node("t", "u"), "u": node("u")}
    done = DependencyFacts(nodes, {"t": S.NONE, "u": S.SUCCESS})
    assert dependency_reasons(task(), done, now=NOW) == [
        "its dependencies are decided: the scheduler schedules it at its next pass"
    ]
    skipped = DependencyFacts(nodes, {"t": S.NONE, "u": S.SKIPPED})
    assert dependency_reasons(task(), skipped, now=NOW)[0].endswith("skips it at its next pass")
    failed = DependencyFacts(nodes, {"t": S.NONE, "u": S.FAILED})
    assert "marks it upstream_failed" in dependency_reasons(task(), failed, now=NOW)[0]
    gone = DependencyFacts({"u": node("u")}, {"u": S.NONE})
    assert dependency_reasons(task(), gone, now=NOW) == [
        "task 't' is not in the DAG version this run uses"
    ]


def test_retries_wait_for_their_time_then_for_the_scheduler() -> None:
    deps = DependencyFacts({"t": node("t")}, {"t": S.UP_FOR_RETRY})
    later = task(S.UP_FOR_RETRY, try_number=2, next_retry_at=NOW + timedelta(seconds=3725))
    assert dependency_reasons(later, deps, now=NOW) == [
        "try 2 failed: the next try is due at 2024-05-01 13:02:05 UTC (in 1 h 2 min 5 s)"
    ]
    due = task(S.UP_FOR_RETRY, try_number=2, next_retry_at=NOW - timedelta(seconds=1))
    assert dependency_reasons(due, deps, now=NOW)[0].endswith("schedules it at its next pass")


def test_past_dependencies_name_the_previous_run() -> None:
    nodes = {
        "t": node("t", depends_on_past=True, wait_for_downstream=True),
        "d1": node("d1", "t"),
        "d2": node("d2", "t"),
    }
    states = {"t": S.NONE, "d1": S.NONE, "d2": S.NONE}
    past = {"t": S.SUCCESS, "d1": S.RUNNING, "d2": S.SKIPPED}
    deps = DependencyFacts(nodes, states, past, "prev")
    assert dependency_reasons(task(), deps, now=NOW) == [
        "wait_for_downstream: its downstream tasks in the previous run 'prev' are not done: "
        "'d1' (running)"
    ]
    first_run = DependencyFacts(nodes, states, None, None)
    assert "schedules it" in dependency_reasons(task(), first_run, now=NOW)[0]


def candidate(ti_id: int, weight: int = 1, pool: str = "p", slots: int = 1) -> QueueCandidate:
    return QueueCandidate(ti_id, RUN, pool, slots, weight)


def queue_facts(mine: QueueCandidate, *others: QueueCandidate, **limits: object) -> QueueFacts:
    facts: dict[str, object] = {
        "mine": mine,
        "candidates": [mine, *others],
        "pool_sizes": {"p": 4},
        "pool_open": {"p": 4},
        "run_open": {RUN: 8},
        "max_active_tasks": 8,
        "parallelism": 32,
        "parallel_open": 32,
    }
    facts.update(limits)
    return QueueFacts(**facts)  # type: ignore[arg-type]


def test_queueing_limits() -> None:
    mine = candidate(1)
    assert queueing_reasons(queue_facts(mine)) == [
        "it is ready and there is room: the scheduler queues it at its next pass"
    ]
    assert queueing_reasons(queue_facts(mine, parallel_open=0)) == [
        "the installation is at its parallelism of 32: that many tasks are queued or running "
        "(scheduler.parallelism)"
    ]
    big = candidate(1, slots=3)
    assert queueing_reasons(queue_facts(big, pool_open={"p": 2})) == [
        "pool 'p' is full: 2 of 4 slots are in use and the task needs 3"
    ]
    # one slot left, and a task of higher priority takes it
    crowded = queue_facts(mine, candidate(2, weight=5), pool_open={"p": 1})
    assert queueing_reasons(crowded) == [
        "tasks of higher priority (or of older runs) take the open slots first: it is queued "
        "when room frees up"
    ]


def test_worker_reasons() -> None:
    assert worker_reasons("gpu", []) == [
        "it is queued for queue 'gpu', but no worker is running (`slipstream worker --queues gpu`)"
    ]
    assert worker_reasons("gpu", [["default"], ["default", "io"]]) == [
        "it is queued for queue 'gpu', which no live worker serves (they serve 'default', "
        "'io'): start one with `slipstream worker --queues gpu`"
    ]
    assert worker_reasons("gpu", [["gpu"], ["default", "gpu"]]) == [
        "it is queued for queue 'gpu', served by 2 live workers: it starts when one of them "
        "has a free slot (worker.concurrency)"
    ]
