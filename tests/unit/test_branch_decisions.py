"""Which tasks a branch or a short circuit skips: pure functions of the DAG's edges."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipstream.decisions import (
    TaskNode,
    Verdict,
    branch_skips,
    decide_ready,
    descendants,
    short_circuit_skips,
)
from slipstream.errors import BranchError
from slipstream.states import TaskInstanceState
from slipstream.trigger_rule import TriggerRule as TR

_S = TaskInstanceState

#        ┌─► a ─► a2 ─┐
# branch ├─► b ───────┼─► join ─► end
#        └────────────┘            (branch >> join too: an "empty" path)
GRAPH: Mapping[str, set[str]] = {
    "branch": {"a", "b", "join"},
    "a": {"a2"},
    "a2": {"join"},
    "b": {"join"},
    "join": {"end"},
    "end": set(),
    "other": set(),
}


def test_descendants() -> None:
    assert descendants(GRAPH, "a") == {"a2", "join", "end"}
    assert descendants(GRAPH, "end") == set()
    assert descendants(GRAPH, "missing") == set()


@pytest.mark.parametrize(
    ("chosen", "skipped"),
    [
        (["a"], {"b"}),  # join is downstream of a: Airflow keeps it
        (["b"], {"a"}),
        (["a", "b"], set()),
        (["join"], {"a", "b"}),  # the empty path
        ([], {"a", "b", "join"}),  # None: every direct downstream task
        (("b", "b"), {"a"}),  # duplicates are harmless
    ],
)
def test_branch_skips_the_direct_downstream_tasks_not_chosen(
    chosen: list[str], skipped: set[str]
) -> None:
    assert branch_skips("branch", GRAPH, chosen) == skipped


def test_branch_without_downstream_skips_nothing() -> None:
    assert branch_skips("end", GRAPH, []) == set()


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        (["nope"], "branch task 'branch' chose 'nope', not a task of the DAG"),
        (["a2"], "branch task 'branch' chose 'a2', not directly downstream of it"),
        (["other", "a"], "chose 'other', not directly downstream"),
        (["b", "end"], "its direct downstream tasks are 'a', 'b', 'join'"),
    ],
)
def test_branch_to_a_task_it_cannot_follow_is_an_error(chosen: list[str], message: str) -> None:
    with pytest.raises(BranchError, match=message):
        branch_skips("branch", GRAPH, chosen)


def test_branch_error_when_there_is_nothing_downstream() -> None:
    with pytest.raises(BranchError, match="direct downstream tasks are none"):
        branch_skips("end", GRAPH, ["a"])


def test_short_circuit_skips() -> None:
    everything = {"a", "a2", "b", "join", "end"}
    assert short_circuit_skips("branch", GRAPH, ignore_downstream_trigger_rules=True) == everything
    direct = short_circuit_skips("branch", GRAPH, ignore_downstream_trigger_rules=False)
    assert direct == {"a", "b", "join"}
    assert short_circuit_skips("end", GRAPH, ignore_downstream_trigger_rules=True) == set()


@given(st.lists(st.sampled_from(["a", "b", "join"]), max_size=3))
def test_branch_never_skips_a_chosen_task_or_one_it_leads_to(chosen: list[str]) -> None:
    skipped = branch_skips("branch", GRAPH, chosen)
    assert skipped <= GRAPH["branch"]
    assert not skipped & set(chosen)
    for task_id in chosen:
        assert not skipped & descendants(GRAPH, task_id)


def _nodes(rules: Mapping[str, TR] | None = None) -> dict[str, TaskNode]:
    upstream: dict[str, set[str]] = {t: set() for t in GRAPH}
    for task_id, downs in GRAPH.items():
        for d in downs:
            upstream[d].add(task_id)
    rules = rules or {}
    return {
        t: TaskNode(t, frozenset(ups), rules.get(t, TR.ALL_SUCCESS)) for t, ups in upstream.items()
    }


def test_after_a_branch_the_trigger_rules_decide_the_rest() -> None:
    """With the skips applied, decide_ready runs the chosen path and the join."""
    nodes = _nodes({"join": TR.NONE_FAILED_MIN_ONE_SUCCESS})
    states = {t: _S.NONE for t in nodes} | {"branch": _S.SUCCESS, "other": _S.SUCCESS}
    states |= dict.fromkeys(branch_skips("branch", GRAPH, ["b"]), _S.SKIPPED)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert decide_ready(nodes, states, now=now) == {
        "a2": Verdict.SKIP,
        "b": Verdict.RUN,
        "join": Verdict.WAIT,
        "end": Verdict.WAIT,
    }
    states |= {"a2": _S.SKIPPED, "b": _S.SUCCESS}
    assert decide_ready(nodes, states, now=now)["join"] == Verdict.RUN
