"""Backfill decisions with fixed clocks: which logical dates a range covers, and what to do
at each given the runs that exist there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipstream.errors import InvalidInputError
from slipstream.service.backfill import (
    BackfillAction,
    PlannedRun,
    ReprocessBehavior,
    backfill_infos,
    backfill_run_id,
    plan_backfill,
    range_infos,
)
from slipstream.service.runs import parse_date
from slipstream.timetables import (
    CronDataIntervalTimetable,
    DagRunInfo,
    DeltaDataIntervalTimetable,
    NullTimetable,
    OnceTimetable,
)

NOW = datetime(2024, 6, 1, tzinfo=UTC)
DAILY = CronDataIntervalTimetable("0 2 * * *", "UTC")

C, R = BackfillAction.CREATE, BackfillAction.RERUN
EXISTS, ACTIVE = BackfillAction.SKIP_EXISTS, BackfillAction.SKIP_ACTIVE


def utc(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


def dates(infos: list[DagRunInfo]) -> list[datetime]:
    return [i.logical_date for i in infos]


def daily(*days: int) -> list[DagRunInfo]:
    return [DagRunInfo.interval(utc(1, d, 2), utc(1, d + 1, 2)) for d in days]


# --- the plan ------------------------------------------------------------------------------

EXISTING = {
    utc(1, 2, 2): "success",
    utc(1, 3, 2): "failed",
    utc(1, 4, 2): "running",
    utc(1, 5, 2): "queued",
}


@pytest.mark.parametrize(
    ("reprocess", "actions"),
    [
        (ReprocessBehavior.NONE, [C, EXISTS, EXISTS, ACTIVE, ACTIVE]),
        (ReprocessBehavior.FAILED, [C, EXISTS, R, ACTIVE, ACTIVE]),
        (ReprocessBehavior.COMPLETED, [C, R, R, ACTIVE, ACTIVE]),
    ],
)
def test_each_behaviour_reruns_its_finished_runs_and_never_touches_live_ones(
    reprocess: ReprocessBehavior, actions: list[BackfillAction]
) -> None:
    plan = plan_backfill(daily(1, 2, 3, 4, 5), EXISTING, reprocess)
    assert plan == [
        PlannedRun(utc(1, d, 2), a) for d, a in zip([1, 2, 3, 4, 5], actions, strict=True)
    ]
    assert all(isinstance(p, tuple) for p in plan)  # (logical_date, action) pairs


def test_a_state_it_does_not_know_is_left_alone() -> None:
    plan = plan_backfill(daily(1), {utc(1, 1, 2): "paused-somehow"}, ReprocessBehavior.COMPLETED)
    assert plan == [(utc(1, 1, 2), ACTIVE)]


def test_runs_at_other_dates_do_not_count() -> None:
    plan = plan_backfill(daily(1), {utc(1, 1, 3): "success"}, ReprocessBehavior.NONE)
    assert plan == [(utc(1, 1, 2), C)]


def test_backwards_puts_the_newest_first() -> None:
    plan = plan_backfill(daily(1, 2, 3), {}, ReprocessBehavior.NONE, run_backwards=True)
    assert [p.logical_date for p in plan] == [utc(1, 3, 2), utc(1, 2, 2), utc(1, 1, 2)]


def test_an_empty_range_plans_nothing() -> None:
    assert plan_backfill([], EXISTING, ReprocessBehavior.COMPLETED) == []


@given(
    st.lists(st.sampled_from(["success", "failed", "running", "queued", None]), max_size=12),
    st.sampled_from(list(ReprocessBehavior)),
)
def test_only_missing_dates_are_created_and_only_finished_runs_rerun(
    states: list[str | None], reprocess: ReprocessBehavior
) -> None:
    infos = daily(*range(1, len(states) + 1))
    existing = {i.logical_date: s for i, s in zip(infos, states, strict=True) if s is not None}
    plan = plan_backfill(infos, existing, reprocess)
    assert [p.logical_date for p in plan] == dates(infos)
    for p in plan:
        state = existing.get(p.logical_date)
        assert (p.action == C) == (state is None)
        if p.action == R:
            assert state in ("success", "failed") and reprocess != ReprocessBehavior.NONE
        if state in ("running", "queued"):
            assert p.action == ACTIVE


# --- the dates -----------------------------------------------------------------------------


def test_a_range_covers_the_logical_dates_within_it_both_ends_included() -> None:
    infos = backfill_infos(DAILY, utc(1, 1, 2), utc(1, 3, 2), now=NOW, anchor=None)
    assert dates(infos) == [utc(1, 1, 2), utc(1, 2, 2), utc(1, 3, 2)]
    assert infos[0].data_interval.end == utc(1, 2, 2) == infos[0].run_after


def test_a_date_alone_is_midnight_so_a_later_run_that_day_is_out() -> None:
    infos = backfill_infos(DAILY, utc(1, 1), utc(1, 3), now=NOW, anchor=None)
    assert dates(infos) == [utc(1, 1, 2), utc(1, 2, 2)]


def test_start_equal_to_end_is_one_run_on_the_schedule_and_none_off_it() -> None:
    assert dates(backfill_infos(DAILY, utc(1, 2, 2), utc(1, 2, 2), now=NOW, anchor=None)) == [
        utc(1, 2, 2)
    ]
    assert backfill_infos(DAILY, utc(1, 2, 3), utc(1, 2, 3), now=NOW, anchor=None) == []


def test_runs_whose_interval_has_not_ended_are_left_to_the_scheduler() -> None:
    now = utc(1, 3, 12)
    infos = backfill_infos(DAILY, utc(1, 1), utc(1, 5), now=now, anchor=None)
    assert dates(infos) == [utc(1, 1, 2), utc(1, 2, 2)]  # the 3rd's interval ends on the 4th
    assert dates(list(range_infos(DAILY, utc(1, 1), utc(1, 5), anchor=None)))[2:] == [
        utc(1, 3, 2),
        utc(1, 4, 2),
    ]


def test_an_interval_ending_exactly_now_counts() -> None:
    infos = backfill_infos(DAILY, utc(1, 1), utc(1, 1, 2), now=utc(1, 2, 2), anchor=None)
    assert dates(infos) == [utc(1, 1, 2)]


def test_the_dag_start_date_does_not_bound_a_cron_backfill() -> None:
    infos = backfill_infos(DAILY, utc(1, 1), utc(1, 2), now=NOW, anchor=utc(3, 1))
    assert dates(infos) == [utc(1, 1, 2)]


def test_cron_dates_follow_the_time_zone_across_dst() -> None:
    paris = CronDataIntervalTimetable("30 2 * * *", "Europe/Paris")
    infos = backfill_infos(paris, utc(3, 30), utc(4, 1), now=NOW, anchor=None)
    # 02:30 CET is 01:30 UTC; on the 31st 02:30 does not exist and shifts to 03:30 CEST
    assert dates(infos) == [utc(3, 30, 1, 30), utc(3, 31, 1, 30)]


def test_a_timedelta_schedule_stays_on_the_grid_of_its_start_date() -> None:
    every_7h = DeltaDataIntervalTimetable(timedelta(hours=7))
    anchor = utc(1, 1, 1)  # 01:00, 08:00, 15:00, 22:00, 05:00 on the 2nd, ...
    infos = backfill_infos(every_7h, utc(1, 2), utc(1, 3), now=NOW, anchor=anchor)
    assert dates(infos) == [utc(1, 2, 5), utc(1, 2, 12), utc(1, 2, 19)]
    before = backfill_infos(every_7h, utc(1, 1, 0), utc(1, 1, 1), now=NOW, anchor=anchor)
    assert dates(before) == [utc(1, 1, 1)]
    # the grid extends before the start date too: 01:00 - 7h = 18:00 the day before
    earlier = backfill_infos(
        every_7h, datetime(2023, 12, 31, 12, tzinfo=UTC), utc(1, 1, 0), now=NOW, anchor=anchor
    )
    assert dates(earlier) == [datetime(2023, 12, 31, 18, tzinfo=UTC)]


def test_a_timedelta_schedule_without_start_date_is_anchored_at_the_epoch() -> None:
    every_5h = DeltaDataIntervalTimetable(timedelta(hours=5))
    infos = backfill_infos(every_5h, utc(1, 1), utc(1, 1, 12), now=NOW, anchor=None)
    assert all(
        (i.logical_date - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(hours=5) == timedelta(0)
        for i in infos
    )
    assert len(infos) == 2


def test_once_runs_at_its_start_date_if_the_range_holds_it() -> None:
    once = OnceTimetable()
    assert dates(backfill_infos(once, utc(1, 1), utc(1, 3), now=NOW, anchor=utc(1, 2))) == [
        utc(1, 2)
    ]
    assert backfill_infos(once, utc(1, 3), utc(1, 5), now=NOW, anchor=utc(1, 2)) == []
    assert backfill_infos(once, utc(1, 1), utc(1, 5), now=NOW, anchor=None) == []


def test_no_schedule_has_no_dates() -> None:
    assert backfill_infos(NullTimetable(), utc(1, 1), utc(2, 1), now=NOW, anchor=utc(1, 1)) == []


def test_a_range_with_too_many_runs_is_refused() -> None:
    minutely = CronDataIntervalTimetable("* * * * *", "UTC")
    assert (
        len(backfill_infos(minutely, utc(1, 1), utc(1, 1, 0, 9), now=NOW, anchor=None, limit=10))
        == 10
    )
    with pytest.raises(InvalidInputError, match="more than 10 runs"):
        backfill_infos(minutely, utc(1, 1), utc(1, 1, 0, 10), now=NOW, anchor=None, limit=10)


# --- small helpers -------------------------------------------------------------------------


def test_run_ids_name_the_logical_date_in_utc() -> None:
    paris = datetime.fromisoformat("2024-01-01T03:00:00+01:00")
    assert backfill_run_id(paris) == "backfill__2024-01-01T02:00:00+00:00"


def test_dates_parse_from_iso_and_bad_ones_name_the_option() -> None:
    assert parse_date("2024-01-31", "--start-date") == datetime(2024, 1, 31)
    assert parse_date(" 2024-01-31T06:00:00+02:00 ", "--start-date").utcoffset() == timedelta(
        hours=2
    )
    with pytest.raises(InvalidInputError, match="--end-date '31/01/2024' is not an ISO date"):
        parse_date("31/01/2024", "--end-date")
