"""Which scheduled tasks to queue: priority, pools, max_active_tasks, parallelism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from slipstream.decisions import QueueCandidate, dagrun_timed_out, select_to_queue

RUN_A = ("dag", "a")
RUN_B = ("dag", "b")


def cand(
    ti_id: int,
    weight: int = 1,
    pool: str = "p",
    slots: int = 1,
    run: tuple[str, str] = RUN_A,
    order: str = "",
) -> QueueCandidate:
    return QueueCandidate(ti_id, run, pool, slots, weight, (order,))


def ids(chosen: list[QueueCandidate]) -> list[int]:
    return [c.ti_id for c in chosen]


def test_highest_priority_first_then_older_runs_then_id() -> None:
    candidates = [
        cand(1, weight=1),
        cand(2, weight=9),
        cand(3, weight=5, run=RUN_B, order="2024-01-02"),
        cand(4, weight=5, order="2024-01-01"),
    ]
    chosen = select_to_queue(
        candidates, pool_open={"p": 10}, run_open={RUN_A: 10, RUN_B: 10}, parallel_open=10
    )
    assert ids(chosen) == [2, 4, 3, 1]


def test_a_one_slot_pool_takes_only_the_most_important() -> None:
    candidates = [cand(1, weight=1), cand(2, weight=3), cand(3, weight=2)]
    chosen = select_to_queue(candidates, pool_open={"p": 1}, run_open={RUN_A: 10}, parallel_open=10)
    assert ids(chosen) == [2]


def test_a_full_pool_does_not_hold_back_another_pool() -> None:
    candidates = [cand(1, weight=9, pool="full"), cand(2, weight=1, pool="free")]
    chosen = select_to_queue(
        candidates, pool_open={"full": 0, "free": 2}, run_open={RUN_A: 10}, parallel_open=10
    )
    assert ids(chosen) == [2]


def test_pool_slots_count_and_a_task_too_big_for_the_open_slots_waits() -> None:
    candidates = [
        cand(1, weight=9, slots=3),
        cand(2, weight=5, slots=2),
        cand(3, weight=1, slots=1),
    ]
    chosen = select_to_queue(candidates, pool_open={"p": 3}, run_open={RUN_A: 10}, parallel_open=10)
    assert ids(chosen) == [1]
    chosen = select_to_queue(candidates, pool_open={"p": 2}, run_open={RUN_A: 10}, parallel_open=10)
    assert ids(chosen) == [2]


def test_a_missing_pool_never_queues() -> None:
    chosen = select_to_queue(
        [cand(1, pool="nope")], pool_open={"p": 5}, run_open={RUN_A: 5}, parallel_open=5
    )
    assert chosen == []


def test_max_active_tasks_is_counted_per_run() -> None:
    candidates = [cand(i, run=RUN_A) for i in range(1, 4)] + [
        cand(i, run=RUN_B) for i in range(4, 7)
    ]
    chosen = select_to_queue(
        candidates, pool_open={"p": 100}, run_open={RUN_A: 1, RUN_B: 2}, parallel_open=100
    )
    assert ids(chosen) == [1, 4, 5]


def test_parallelism_caps_the_total() -> None:
    candidates = [cand(i, weight=i) for i in range(1, 6)]
    chosen = select_to_queue(
        candidates, pool_open={"p": 100}, run_open={RUN_A: 100}, parallel_open=2
    )
    assert ids(chosen) == [5, 4]


@given(
    st.lists(
        st.tuples(st.integers(1, 5), st.sampled_from(["p", "q"]), st.integers(1, 3)), max_size=30
    ),
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(0, 10),
)
def test_never_exceeds_any_limit(
    tasks: list[tuple[int, str, int]], p_open: int, run_open: int, parallel: int
) -> None:
    candidates = [
        cand(i, weight=w, pool=pool, slots=slots) for i, (w, pool, slots) in enumerate(tasks)
    ]
    chosen = select_to_queue(
        candidates,
        pool_open={"p": p_open, "q": 2},
        run_open={RUN_A: run_open},
        parallel_open=parallel,
    )
    assert len(chosen) <= min(run_open, parallel)
    assert sum(c.pool_slots for c in chosen if c.pool == "p") <= p_open
    assert sum(c.pool_slots for c in chosen if c.pool == "q") <= 2
    assert len({c.ti_id for c in chosen}) == len(chosen)


def test_dagrun_timeout() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    limit = timedelta(minutes=5)
    assert not dagrun_timed_out(start, limit, start + limit)
    assert dagrun_timed_out(start, limit, start + limit + timedelta(seconds=1))
    assert not dagrun_timed_out(start, None, start + timedelta(days=9))
    assert not dagrun_timed_out(None, limit, start)
