"""The pure scheduling decisions, with plain values and a fixed clock."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slipstream.decisions import (
    MAX_RETRY_DELAY,
    TaskNode,
    Verdict,
    dag_run_outcome,
    decide_ready,
    evaluate_trigger_rule,
    execution_deadline,
    next_retry_at,
    retry_due,
    retry_time,
    should_retry,
    topological_order,
)
from slipstream.errors import CycleError
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.trigger_rule import TriggerRule as TR

S = TaskInstanceState
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# One letter per upstream state keeps the table readable.
_LETTERS = {
    "S": S.SUCCESS,
    "F": S.FAILED,
    "U": S.UPSTREAM_FAILED,
    "K": S.SKIPPED,
    "R": S.REMOVED,
    "N": S.NONE,
    "Q": S.QUEUED,
    "G": S.RUNNING,
    "Y": S.UP_FOR_RETRY,
}
RUN, WAIT, SKIP, UF = Verdict.RUN, Verdict.WAIT, Verdict.SKIP, Verdict.UPSTREAM_FAILED

TRIGGER_TABLE: list[tuple[TR, str, Verdict]] = [
    (TR.ALL_SUCCESS, "SS", RUN),
    (TR.ALL_SUCCESS, "SG", WAIT),
    (TR.ALL_SUCCESS, "SY", WAIT),
    (TR.ALL_SUCCESS, "SF", UF),
    (TR.ALL_SUCCESS, "SU", UF),
    (TR.ALL_SUCCESS, "FN", UF),
    (TR.ALL_SUCCESS, "SK", SKIP),
    (TR.ALL_SUCCESS, "KN", SKIP),
    (TR.ALL_SUCCESS, "KF", UF),  # a failure outranks a skip
    (TR.ALL_SUCCESS, "SR", RUN),  # removed upstreams are ignored
    (TR.ALL_FAILED, "FF", RUN),
    (TR.ALL_FAILED, "FU", RUN),
    (TR.ALL_FAILED, "FN", WAIT),
    (TR.ALL_FAILED, "FS", SKIP),
    (TR.ALL_FAILED, "FK", SKIP),
    (TR.ALL_FAILED, "NQ", WAIT),
    (TR.ALL_DONE, "SF", RUN),
    (TR.ALL_DONE, "KU", RUN),
    (TR.ALL_DONE, "KK", RUN),
    (TR.ALL_DONE, "SG", WAIT),
    (TR.ALL_DONE, "FY", WAIT),
    (TR.ALL_SKIPPED, "KK", RUN),
    (TR.ALL_SKIPPED, "KN", WAIT),
    (TR.ALL_SKIPPED, "KS", SKIP),
    (TR.ALL_SKIPPED, "KF", SKIP),
    (TR.ALL_SKIPPED, "UN", SKIP),
    (TR.ONE_SUCCESS, "SN", RUN),
    (TR.ONE_SUCCESS, "SF", RUN),
    (TR.ONE_SUCCESS, "FN", WAIT),
    (TR.ONE_SUCCESS, "KK", SKIP),
    (TR.ONE_SUCCESS, "KF", UF),
    (TR.ONE_SUCCESS, "FF", UF),
    (TR.ONE_SUCCESS, "UK", UF),
    (TR.ONE_FAILED, "FN", RUN),
    (TR.ONE_FAILED, "UG", RUN),
    (TR.ONE_FAILED, "SN", WAIT),
    (TR.ONE_FAILED, "SS", SKIP),
    (TR.ONE_FAILED, "SK", SKIP),
    (TR.ONE_FAILED, "KK", SKIP),
    (TR.ONE_DONE, "SN", RUN),
    (TR.ONE_DONE, "FN", RUN),
    (TR.ONE_DONE, "UN", WAIT),  # Airflow: upstream_failed did not run, so it is not "done"
    (TR.ONE_DONE, "KN", WAIT),
    (TR.ONE_DONE, "KK", SKIP),
    (TR.ONE_DONE, "UU", SKIP),
    (TR.ONE_DONE, "KU", SKIP),
    (TR.NONE_FAILED, "SS", RUN),
    (TR.NONE_FAILED, "SK", RUN),
    (TR.NONE_FAILED, "KK", RUN),
    (TR.NONE_FAILED, "SN", WAIT),
    (TR.NONE_FAILED, "SF", UF),
    (TR.NONE_FAILED, "KU", UF),
    (TR.NONE_FAILED, "NF", UF),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "SK", RUN),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "SS", RUN),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "KK", SKIP),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "KN", WAIT),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "SN", WAIT),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "KF", UF),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, "SU", UF),
    (TR.NONE_SKIPPED, "SS", RUN),
    (TR.NONE_SKIPPED, "SF", RUN),
    (TR.NONE_SKIPPED, "FU", RUN),
    (TR.NONE_SKIPPED, "SK", SKIP),
    (TR.NONE_SKIPPED, "KN", SKIP),
    (TR.NONE_SKIPPED, "SN", WAIT),
    (TR.ALWAYS, "NN", RUN),
    (TR.ALWAYS, "FF", RUN),
    (TR.ALWAYS, "KU", RUN),
]


def states(letters: str) -> list[TaskInstanceState]:
    return [_LETTERS[c] for c in letters]


@pytest.mark.parametrize(
    ("rule", "upstream", "expected"),
    TRIGGER_TABLE,
    ids=[f"{r.value}-{u}" for r, u, _ in TRIGGER_TABLE],
)
def test_trigger_rule_table(rule: TR, upstream: str, expected: Verdict) -> None:
    assert evaluate_trigger_rule(rule, states(upstream)) == expected


def test_every_rule_is_in_the_table() -> None:
    assert {r for r, _, _ in TRIGGER_TABLE} == set(TR)


@pytest.mark.parametrize("rule", list(TR))
@pytest.mark.parametrize("upstream", ["", "R", "RR"])
def test_no_upstream_runs(rule: TR, upstream: str) -> None:
    assert evaluate_trigger_rule(rule, states(upstream)) == RUN


_ANY_STATE = st.sampled_from(list(_LETTERS.values()))
_FINISHED = st.sampled_from([S.SUCCESS, S.FAILED, S.UPSTREAM_FAILED, S.SKIPPED, S.REMOVED])


@settings(max_examples=200, deadline=None)
@given(
    rule=st.sampled_from(list(TR)), upstream=st.lists(_ANY_STATE, max_size=6), seed=st.integers()
)
def test_verdict_ignores_order_and_removed(
    rule: TR, upstream: list[TaskInstanceState], seed: int
) -> None:
    shuffled = [*upstream, S.REMOVED]
    random.Random(seed).shuffle(shuffled)
    assert evaluate_trigger_rule(rule, shuffled) == evaluate_trigger_rule(rule, upstream)


@settings(max_examples=200, deadline=None)
@given(rule=st.sampled_from(list(TR)), upstream=st.lists(_FINISHED, max_size=6))
def test_every_rule_decides_once_all_upstream_finished(
    rule: TR, upstream: list[TaskInstanceState]
) -> None:
    assert evaluate_trigger_rule(rule, upstream) != WAIT


# --- decide_ready ----------------------------------------------------------------------


def chain(*ids: str, rule: TR = TR.ALL_SUCCESS) -> dict[str, TaskNode]:
    """a -> b -> c ..., every task with ``rule``."""
    return {
        t: TaskNode(t, frozenset([ids[i - 1]]) if i else frozenset(), rule)
        for i, t in enumerate(ids)
    }


def test_decide_ready_only_undecided_tasks() -> None:
    nodes = {
        "a": TaskNode("a", frozenset()),
        "b": TaskNode("b", frozenset({"a"})),
        "c": TaskNode("c", frozenset({"a"}), TR.ALL_FAILED),
        "d": TaskNode("d", frozenset({"b", "c"}), TR.ONE_SUCCESS),
        "e": TaskNode("e", frozenset()),
    }
    got = decide_ready(nodes, {"a": S.SUCCESS, "e": S.RUNNING}, now=NOW)
    assert got == {"b": RUN, "c": SKIP, "d": WAIT}


@pytest.mark.parametrize(
    ("retry_at", "upstream", "expected"),
    [
        (NOW - timedelta(seconds=1), S.SUCCESS, RUN),
        (NOW, S.SUCCESS, RUN),
        (None, S.SUCCESS, RUN),  # no known time: due now
        (NOW + timedelta(seconds=1), S.SUCCESS, None),  # not due: not considered at all
        (NOW, S.FAILED, WAIT),  # a retry never turns into skip / upstream_failed
        (NOW, S.SKIPPED, WAIT),
    ],
)
def test_decide_ready_retries(
    retry_at: datetime | None, upstream: TaskInstanceState, expected: Verdict | None
) -> None:
    nodes = chain("a", "b")
    got = decide_ready(
        nodes, {"a": upstream, "b": S.UP_FOR_RETRY}, now=NOW, next_retry_at={"b": retry_at}
    )
    assert got.get("b") == expected


def test_naive_now_and_retry_times_are_utc() -> None:
    got = decide_ready(
        {"a": TaskNode("a", frozenset())},
        {"a": S.UP_FOR_RETRY},
        now=datetime(2024, 5, 1, 12, 0),
        next_retry_at={"a": datetime(2024, 5, 1, 12, 0, 1)},
    )
    assert got == {}


@pytest.mark.parametrize(
    ("past", "upstream", "expected"),
    [
        (None, S.SUCCESS, RUN),  # no previous run
        ({"b": None}, S.SUCCESS, RUN),  # task new in this run
        ({}, S.SUCCESS, RUN),
        ({"b": S.SUCCESS}, S.SUCCESS, RUN),
        ({"b": S.SKIPPED}, S.SUCCESS, RUN),
        ({"b": S.FAILED}, S.SUCCESS, WAIT),
        ({"b": S.RUNNING}, S.SUCCESS, WAIT),
        ({"b": S.UPSTREAM_FAILED}, S.SUCCESS, WAIT),
        ({"b": S.FAILED}, S.SKIPPED, WAIT),  # wait for past depends before skipping
        ({"b": S.FAILED}, S.FAILED, UF),  # ... but a failure still propagates
    ],
)
def test_depends_on_past(
    past: Mapping[str, TaskInstanceState | None] | None,
    upstream: TaskInstanceState,
    expected: Verdict,
) -> None:
    nodes = {
        "a": TaskNode("a", frozenset()),
        "b": TaskNode("b", frozenset({"a"}), depends_on_past=True),
    }
    assert decide_ready(nodes, {"a": upstream}, now=NOW, past_states=past)["b"] == expected


@pytest.mark.parametrize(
    ("past_c", "expected"),
    [(S.SUCCESS, RUN), (S.SKIPPED, RUN), (None, RUN), (S.RUNNING, WAIT), (S.FAILED, WAIT)],
)
def test_wait_for_downstream(past_c: TaskInstanceState | None, expected: Verdict) -> None:
    nodes = {
        "b": TaskNode("b", frozenset(), wait_for_downstream=True),
        "c": TaskNode("c", frozenset({"b"})),
    }
    past = {"b": S.SUCCESS, "c": past_c}
    assert decide_ready(nodes, {}, now=NOW, past_states=past)["b"] == expected


# --- retries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("try_number", "max_tries", "expected"),
    [(1, 0, False), (1, 1, True), (2, 1, False), (2, 3, True), (3, 3, True), (4, 3, False)],
)
def test_should_retry(try_number: int, max_tries: int, expected: bool) -> None:
    assert should_retry(try_number=try_number, max_tries=max_tries) is expected


def retry_delay_for(try_number: int, **kwargs: object) -> timedelta:
    args: dict[str, object] = {
        "retry_delay": timedelta(seconds=10),
        "exponential_backoff": True,
        "max_retry_delay": None,
        "key": "dag.task.run1",
    }
    args.update(kwargs)
    return next_retry_at(try_number=try_number, finished_at=NOW, **args) - NOW  # type: ignore[arg-type]


def test_linear_retry_delay() -> None:
    assert retry_delay_for(5, exponential_backoff=False) == timedelta(seconds=10)


@pytest.mark.parametrize("try_number", [1, 2, 3, 4, 5, 8])
def test_exponential_backoff_bounds(try_number: int) -> None:
    base = timedelta(seconds=10 * 2 ** (try_number - 1))
    delay = retry_delay_for(try_number)
    assert base <= delay < 2 * base


def test_exponential_backoff_is_deterministic_and_keyed() -> None:
    assert retry_delay_for(4) == retry_delay_for(4)
    spread = {retry_delay_for(4, key=f"dag.task.run{i}") for i in range(20)}
    assert len(spread) > 5  # the jitter spreads different task instances apart


@pytest.mark.parametrize(
    ("max_retry_delay", "cap"),
    [(None, MAX_RETRY_DELAY), (timedelta(minutes=5), timedelta(minutes=5))],
)
def test_exponential_backoff_is_capped(max_retry_delay: timedelta | None, cap: timedelta) -> None:
    for try_number in (15, 20, 1000, 10**6):
        assert retry_delay_for(try_number, max_retry_delay=max_retry_delay) == cap


def test_zero_retry_delay_backs_off_at_least_a_second() -> None:
    assert retry_delay_for(1, retry_delay=timedelta(0)) >= timedelta(seconds=1)


def test_naive_finished_at_is_utc() -> None:
    got = next_retry_at(
        try_number=1,
        finished_at=datetime(2024, 5, 1),
        retry_delay=timedelta(minutes=1),
        exponential_backoff=False,
        max_retry_delay=None,
        key="k",
    )
    assert got == datetime(2024, 5, 1, 0, 1, tzinfo=UTC)


def test_execution_deadline() -> None:
    assert execution_deadline(NOW, None) is None
    assert execution_deadline(NOW, timedelta(minutes=3)) == NOW + timedelta(minutes=3)


# --- run outcome -----------------------------------------------------------------------

DIAMOND = {
    "a": TaskNode("a", frozenset()),
    "b": TaskNode("b", frozenset({"a"})),
    "c": TaskNode("c", frozenset({"a"})),
    "d": TaskNode("d", frozenset({"b", "c"}), TR.ALL_DONE),
}


@pytest.mark.parametrize(
    ("letters", "expected"),
    [
        ("NNNN", None),
        ("SGNN", None),
        ("SSYN", None),  # a retry is pending
        ("SSSS", DagRunState.SUCCESS),
        ("SKKK", DagRunState.SUCCESS),
        ("SFSS", DagRunState.SUCCESS),  # judged by its leaves: d (all_done) succeeded
        ("SFSF", DagRunState.FAILED),
        ("FUUU", DagRunState.FAILED),
        ("SSSR", DagRunState.SUCCESS),  # removed leaves are ignored
        ("SSSN", None),  # d is ready to run
        ("FNNN", None),  # b and c are about to become upstream_failed
    ],
)
def test_dag_run_outcome(letters: str, expected: DagRunState | None) -> None:
    assert dag_run_outcome(DIAMOND, dict(zip("abcd", states(letters), strict=True))) == expected


def test_deadlock_fails_the_run() -> None:
    # "b" waits on an upstream that will never get a state: nothing can progress.
    nodes = {"a": TaskNode("a", frozenset()), "b": TaskNode("b", frozenset({"a", "ghost"}))}
    assert dag_run_outcome(nodes, {"a": S.SUCCESS}) == DagRunState.FAILED
    assert dag_run_outcome(nodes, {"a": S.RUNNING}) is None


def test_depends_on_past_alone_is_no_deadlock() -> None:
    nodes = {"a": TaskNode("a", frozenset(), depends_on_past=True)}
    assert dag_run_outcome(nodes, {"a": S.NONE}) is None


def _random_dag(rng: random.Random, size: int) -> dict[str, TaskNode]:
    ids = [f"t{i:02d}" for i in range(size)]
    return {
        t: TaskNode(
            t,
            frozenset(u for u in ids[:i] if rng.random() < 0.3),
            rng.choice(list(TR)),
        )
        for i, t in enumerate(ids)
    }


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 12))
def test_runs_always_finish_without_deadlock(seed: int, size: int) -> None:
    """Play random DAGs to the end: every task finishes and the run never deadlocks."""
    rng = random.Random(seed)
    nodes = _random_dag(rng, size)
    current: dict[str, TaskInstanceState] = {}
    outcome = None
    for _ in range(3 * size + 3):
        outcome = dag_run_outcome(nodes, current)
        if outcome is not None:
            break
        verdicts = decide_ready(nodes, current, now=NOW)
        assert any(v != WAIT for v in verdicts.values())
        for task_id, verdict in verdicts.items():
            current[task_id] = {
                RUN: rng.choice([S.SUCCESS, S.FAILED, S.SKIPPED]),
                SKIP: S.SKIPPED,
                UF: S.UPSTREAM_FAILED,
                WAIT: current.get(task_id, S.NONE),
            }[verdict]
    assert outcome is not None
    assert all(current[t].is_finished for t in nodes)


# --- topological order -------------------------------------------------------------------


def test_topological_order_is_stable_by_task_id() -> None:
    nodes = {
        "z": TaskNode("z", frozenset()),
        "a": TaskNode("a", frozenset({"z"})),
        "m": TaskNode("m", frozenset()),
        "b": TaskNode("b", frozenset({"m", "a"})),
        "c": TaskNode("c", frozenset({"m"})),
    }
    assert topological_order(nodes) == ["m", "c", "z", "a", "b"]


def test_topological_order_ignores_unknown_upstream() -> None:
    assert topological_order({"a": TaskNode("a", frozenset({"elsewhere"}))}) == ["a"]


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ({"a": "c", "b": "a", "c": "b"}, "cycle in DAG: a -> b -> c -> a"),
        ({"x": "x"}, "cycle in DAG: x -> x"),
        ({"root": "", "b": "root,d", "c": "b", "d": "c"}, "cycle in DAG: b -> c -> d -> b"),
    ],
)
def test_cycle_is_named(edges: dict[str, str], message: str) -> None:
    nodes = {t: TaskNode(t, frozenset(filter(None, up.split(",")))) for t, up in edges.items()}
    with pytest.raises(CycleError) as excinfo:
        topological_order(nodes)
    assert str(excinfo.value) == message


class _Policy:
    retry_delay = timedelta(seconds=30)
    retry_exponential_backoff = False
    max_retry_delay = None


def test_retry_time_only_for_an_up_for_retry_try_of_a_known_task() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    ids = {"try_number": 1, "finished_at": when, "dag_id": "d", "task_id": "t", "run_id": "r"}
    assert retry_time(TaskInstanceState.UP_FOR_RETRY, _Policy(), **ids) == retry_due(
        _Policy(), **ids
    )
    assert retry_time(TaskInstanceState.UP_FOR_RETRY, _Policy(), **ids) == when + timedelta(
        seconds=30
    )
    assert retry_time(TaskInstanceState.FAILED, _Policy(), **ids) is None
    assert retry_time(TaskInstanceState.UP_FOR_RETRY, None, **ids) is None
