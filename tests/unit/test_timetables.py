"""Timetables: when runs happen, with fixed clocks. Airflow 2 data-interval semantics."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slipstream.errors import DagDefinitionError
from slipstream.timetables import (
    CronDataIntervalTimetable,
    DagRunInfo,
    DataInterval,
    DeltaDataIntervalTimetable,
    NullTimetable,
    OnceTimetable,
    TimeRestriction,
    Timetable,
    deserialize_timetable,
    next_run_infos,
    parse_timezone,
    timetable_from_schedule,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def starts(infos: list[DagRunInfo]) -> list[datetime]:
    return [i.logical_date for i in infos]


def upcoming(
    schedule: Any,
    *,
    start: datetime | None,
    now: datetime,
    n: int = 3,
    catchup: bool = True,
    end: datetime | None = None,
    tz: str = "UTC",
    last: DataInterval | None = None,
) -> list[DagRunInfo]:
    timetable = timetable_from_schedule(schedule, tz)
    return next_run_infos(timetable, TimeRestriction(start, end, catchup), now, n, last)


# --- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "expression"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_presets(preset: str, expression: str) -> None:
    timetable = timetable_from_schedule(preset)
    assert isinstance(timetable, CronDataIntervalTimetable)
    assert timetable.summary == preset
    assert timetable.expression == expression
    assert timetable.periodic and timetable.can_be_scheduled


@pytest.mark.parametrize(
    ("schedule", "tz", "summary", "description"),
    [
        ("0 6 * * *", "Europe/Paris", "0 6 * * *", "At 06:00 every day (Europe/Paris)"),
        ("@hourly", "UTC", "@hourly", "At minute 0 past every hour every day (UTC)"),
        ("*/15 * * * *", "UTC", "*/15 * * * *", "Every 15 minutes every day (UTC)"),
        ("30 8 * * 1,5", "UTC", "30 8 * * 1,5", "At 08:30 on Monday and Friday (UTC)"),
        ("0 0 1 1 *", "UTC", "0 0 1 1 *", "At 00:00 on day 1 of the month in January (UTC)"),
        (timedelta(days=1), "UTC", "1 day, 0:00:00", "Every 1 day"),
        (timedelta(hours=6, minutes=30), "UTC", "6:30:00", "Every 6 hours, 30 minutes"),
        ("@once", "UTC", "@once", "Once, at the start date"),
        (None, "UTC", "None", "Never, external triggers only"),
    ],
)
def test_summary_and_description(schedule: Any, tz: str, summary: str, description: str) -> None:
    timetable = timetable_from_schedule(schedule, tz)
    assert (timetable.summary, timetable.description) == (summary, description)


def test_kinds() -> None:
    assert isinstance(timetable_from_schedule(timedelta(hours=1)), DeltaDataIntervalTimetable)
    once = timetable_from_schedule("@once")
    assert isinstance(once, OnceTimetable) and not once.periodic and once.can_be_scheduled
    null = timetable_from_schedule(None)
    assert isinstance(null, NullTimetable) and not null.periodic and not null.can_be_scheduled
    custom = CronDataIntervalTimetable("0 1 * * *", "Europe/Paris")
    assert timetable_from_schedule(custom, "UTC") is custom


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ("61 * * * *", "invalid schedule '61 * * * *': "),
        ("* * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 3"),
        ("* * * * * *", "got 6"),
        ("", "got 0"),
        ("a b c d e", "invalid schedule 'a b c d e': "),
        ("0 0 31 4 *", "invalid schedule '0 0 31 4 *': it never fires"),
        ("@fortnightly", "invalid schedule '@fortnightly': unknown preset"),
        ("@continuous", "@continuous is not supported"),
        (42, "not int"),
        (timedelta(0), "must be positive"),
        (timedelta(hours=-1), "must be positive"),
    ],
)
def test_bad_schedules(schedule: Any, fragment: str) -> None:
    with pytest.raises(DagDefinitionError) as excinfo:
        timetable_from_schedule(schedule)
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("Europe/Paris", "Europe/Paris"),
        ("UTC", "UTC"),
        ("utc", "UTC"),
        (UTC, "UTC"),
        (PARIS, "Europe/Paris"),
        ("+05:30", "+05:30"),
        (timezone(timedelta(hours=-3)), "-03:00"),
    ],
)
def test_parse_timezone(given: str | tzinfo, name: str) -> None:
    tz = parse_timezone(given)
    assert timetable_from_schedule("@daily", tz).serialize()["timezone"] == name


def test_parse_timezone_reads_a_named_foreign_tzinfo() -> None:
    class PendulumLike(tzinfo):
        name = "Asia/Tokyo"

        def utcoffset(self, dt: datetime | None) -> timedelta:
            return timedelta(hours=9)

        def dst(self, dt: datetime | None) -> timedelta:
            return timedelta(0)

        def tzname(self, dt: datetime | None) -> str:
            return "JST"

    assert parse_timezone(PendulumLike()) == ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize("bad", ["Europe/Pariss", "", "../etc/passwd", "+25:00"])
def test_unknown_timezone(bad: str) -> None:
    with pytest.raises(DagDefinitionError, match="unknown time zone"):
        parse_timezone(bad)


# --- cron scheduling ------------------------------------------------------------------------


def test_data_interval_semantics() -> None:
    [info] = upcoming("@daily", start=utc(2024, 1, 1), now=utc(2024, 1, 1), n=1)
    assert info.logical_date == utc(2024, 1, 1)
    assert info.data_interval == DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))
    assert info.run_after == utc(2024, 1, 2)


def test_catchup_starts_at_aligned_start_date() -> None:
    got = upcoming("@daily", start=utc(2024, 1, 1, 10), now=utc(2024, 3, 1))
    assert starts(got) == [utc(2024, 1, 2), utc(2024, 1, 3), utc(2024, 1, 4)]


@pytest.mark.parametrize(
    ("now", "first"),
    [
        (utc(2024, 3, 10, 12), utc(2024, 3, 9)),  # mid-interval: the last complete one
        (utc(2024, 3, 10), utc(2024, 3, 9)),  # on a boundary: the one that just ended
        (utc(2024, 1, 1, 5), utc(2024, 1, 2)),  # never before the start_date (aligned)
    ],
)
def test_no_catchup_starts_at_latest_complete_interval(now: datetime, first: datetime) -> None:
    got = upcoming("@daily", start=utc(2024, 1, 1, 1), now=now, catchup=False, n=2)
    assert starts(got) == [first, first + timedelta(days=1)]


def test_no_catchup_after_downtime_skips_ahead() -> None:
    last = DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))
    got = upcoming(
        "@daily", start=utc(2024, 1, 1), now=utc(2024, 2, 1, 3), catchup=False, last=last
    )
    assert starts(got)[0] == utc(2024, 1, 31)
    got = upcoming("@daily", start=utc(2024, 1, 1), now=utc(2024, 2, 1, 3), catchup=True, last=last)
    assert starts(got)[0] == utc(2024, 1, 2)


def test_no_catchup_continues_after_the_last_run() -> None:
    last = DataInterval(utc(2024, 1, 9), utc(2024, 1, 10))
    got = upcoming(
        "@daily", start=utc(2024, 1, 1), now=utc(2024, 1, 10, 3), catchup=False, last=last
    )
    assert starts(got)[0] == utc(2024, 1, 10)  # its run_after is still ahead


def test_end_date_is_the_last_logical_date() -> None:
    got = upcoming("@daily", start=utc(2024, 1, 1), end=utc(2024, 1, 3), now=utc(2024, 2, 1), n=10)
    assert starts(got) == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]
    assert upcoming("@daily", start=utc(2024, 1, 5), end=utc(2024, 1, 3), now=utc(2024, 2, 1)) == []


def test_catchup_without_start_date_schedules_nothing() -> None:
    assert upcoming("@daily", start=None, now=utc(2024, 1, 1)) == []


def test_changed_schedule_realigns_the_last_run() -> None:
    last = DataInterval(utc(2024, 1, 1), utc(2024, 1, 1, 7, 30))  # from an older schedule
    got = upcoming("0 * * * *", start=utc(2024, 1, 1), now=utc(2024, 1, 5), last=last, n=1)
    assert starts(got) == [utc(2024, 1, 1, 7)]


def test_naive_datetimes_are_utc() -> None:
    timetable = timetable_from_schedule("@daily")
    restriction = TimeRestriction(datetime(2024, 1, 1), None, True)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=restriction, now=datetime(2024, 1, 5)
    )
    assert info is not None and info.logical_date == utc(2024, 1, 1)
    assert info.logical_date.tzinfo is UTC


# --- time zones and DST ------------------------------------------------------------------


def test_daily_in_paris_across_spring_forward() -> None:
    got = upcoming("0 6 * * *", start=utc(2024, 3, 29), now=utc(2024, 5, 1), tz="Europe/Paris", n=4)
    assert [i.logical_date.astimezone(PARIS).hour for i in got] == [6, 6, 6, 6]
    assert starts(got) == [
        utc(2024, 3, 29, 5),
        utc(2024, 3, 30, 5),
        utc(2024, 3, 31, 4),
        utc(2024, 4, 1, 4),
    ]
    # the interval holding the change lasts 23 hours
    assert [i.data_interval.end - i.data_interval.start for i in got][1] == timedelta(hours=23)


def test_fixed_time_in_the_spring_gap_runs_once_shifted_forward() -> None:
    got = upcoming("30 2 * * *", start=utc(2024, 3, 30), now=utc(2024, 5, 1), tz="Europe/Paris")
    local = [i.logical_date.astimezone(PARIS) for i in got]
    assert [(t.day, t.hour, t.minute) for t in local] == [(30, 2, 30), (31, 3, 30), (1, 2, 30)]


def test_fixed_time_in_the_autumn_overlap_runs_once() -> None:
    got = upcoming(
        "30 1 * * *", start=utc(2024, 11, 2), now=utc(2024, 12, 1), tz="America/New_York"
    )
    assert starts(got) == [
        utc(2024, 11, 2, 5, 30),
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 4, 6, 30),
    ]


def test_hourly_stays_hourly_across_both_changes() -> None:
    for start in (utc(2024, 3, 30, 22), utc(2024, 10, 26, 22)):
        got = upcoming("@hourly", start=start, now=utc(2025, 1, 1), tz="Europe/Paris", n=8)
        assert starts(got) == [start + timedelta(hours=h) for h in range(8)]


def test_hourly_at_a_half_hour_offset_zone() -> None:
    got = upcoming("0 * * * *", start=utc(2024, 1, 1), now=utc(2024, 2, 1), tz="Asia/Kolkata", n=2)
    assert starts(got) == [utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 1, 30)]


def test_no_catchup_in_a_time_zone() -> None:
    now = utc(2024, 7, 10, 3)  # 05:00 in Paris: today's 06:00 has not come yet
    got = upcoming(
        "0 6 * * *", start=utc(2024, 1, 1), now=now, tz="Europe/Paris", catchup=False, n=1
    )
    assert got[0].data_interval == DataInterval(utc(2024, 7, 8, 4), utc(2024, 7, 9, 4))


_ZONES = st.sampled_from(
    ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
)
_CRONS = st.sampled_from(
    ["0 * * * *", "*/20 * * * *", "30 2 * * *", "0 0,2,3 * * *", "15 1 * * 0", "@daily"]
)


@settings(max_examples=40, deadline=None)
@given(
    cron=_CRONS,
    tz=_ZONES,
    start=st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)),
)
def test_cron_intervals_are_contiguous_aligned_and_increasing(
    cron: str, tz: str, start: datetime
) -> None:
    timetable = timetable_from_schedule(cron, tz)
    assert isinstance(timetable, CronDataIntervalTimetable)
    got = next_run_infos(timetable, TimeRestriction(start, None, True), utc(2031, 1, 1), 30)
    assert len(got) == 30
    for before, after in itertools.pairwise(got):
        assert before.data_interval.end == after.data_interval.start
        assert before.data_interval.start < before.data_interval.end
    for info in got:
        assert timetable._align_to_next(info.logical_date) == info.logical_date
        assert info.logical_date >= start.replace(tzinfo=UTC)


# --- timedelta, @once, None ----------------------------------------------------------------


def test_delta_is_anchored_at_start_date() -> None:
    start = utc(2024, 1, 1, 1)
    got = upcoming(timedelta(hours=6), start=start, now=utc(2024, 1, 10))
    assert starts(got) == [start, utc(2024, 1, 1, 7), utc(2024, 1, 1, 13)]
    got = upcoming(timedelta(hours=6), start=start, now=utc(2024, 1, 10, 14), catchup=False, n=2)
    # 14:00 on the grid 01, 07, 13, 19: [07:00, 13:00) is the latest complete interval
    assert starts(got) == [utc(2024, 1, 10, 7), utc(2024, 1, 10, 13)]
    assert got[0].run_after == utc(2024, 1, 10, 13)


def test_delta_without_start_date_is_anchored_at_the_epoch() -> None:
    got = upcoming(timedelta(days=1), start=None, now=utc(2024, 1, 10, 14), catchup=False, n=1)
    assert got[0].data_interval == DataInterval(utc(2024, 1, 9), utc(2024, 1, 10))


def test_delta_future_start_date() -> None:
    got = upcoming(
        timedelta(hours=1), start=utc(2030, 1, 1), now=utc(2024, 1, 1), catchup=False, n=1
    )
    assert starts(got) == [utc(2030, 1, 1)]


def test_once() -> None:
    got = upcoming("@once", start=utc(2024, 1, 1, 9), now=utc(2025, 1, 1), catchup=False, n=5)
    assert got == [DagRunInfo.exact(utc(2024, 1, 1, 9))]
    ran = got[0].data_interval
    assert upcoming("@once", start=utc(2024, 1, 1), now=utc(2025, 1, 1), last=ran) == []
    assert upcoming("@once", start=None, now=utc(2025, 1, 1)) == []
    assert upcoming("@once", start=utc(2024, 2, 1), end=utc(2024, 1, 1), now=utc(2025, 1, 1)) == []


def test_null_never_schedules() -> None:
    assert upcoming(None, start=utc(2024, 1, 1), now=utc(2025, 1, 1)) == []


@pytest.mark.parametrize(
    ("schedule", "run_after", "expected"),
    [
        ("@daily", utc(2024, 1, 25, 1), (utc(2024, 1, 24), utc(2024, 1, 25))),
        ("@daily", utc(2024, 1, 25), (utc(2024, 1, 24), utc(2024, 1, 25))),
        ("0 6 * * *", utc(2024, 3, 31, 12), (utc(2024, 3, 30, 5), utc(2024, 3, 31, 4))),
        (timedelta(hours=2), utc(2024, 1, 25, 1), (utc(2024, 1, 24, 23), utc(2024, 1, 25, 1))),
        ("@once", utc(2024, 1, 25, 1), (utc(2024, 1, 25, 1), utc(2024, 1, 25, 1))),
        (None, utc(2024, 1, 25, 1), (utc(2024, 1, 25, 1), utc(2024, 1, 25, 1))),
    ],
)
def test_manual_data_interval(
    schedule: Any, run_after: datetime, expected: tuple[datetime, datetime]
) -> None:
    timetable = timetable_from_schedule(
        schedule, "Europe/Paris" if schedule == "0 6 * * *" else "UTC"
    )
    assert timetable.infer_manual_data_interval(run_after=run_after) == DataInterval(*expected)


# --- serialization ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timetable",
    [
        CronDataIntervalTimetable("0 6 * * 1-5", "Europe/Paris"),
        CronDataIntervalTimetable("@daily"),
        DeltaDataIntervalTimetable(timedelta(days=1, seconds=5, microseconds=7), "+02:00"),
        OnceTimetable("America/New_York"),
        NullTimetable(),
    ],
    ids=repr,
)
def test_serialize_round_trip(timetable: Timetable) -> None:
    data = json.loads(json.dumps(timetable.serialize()))
    assert "type" in data and "timezone" in data
    back = deserialize_timetable(data)
    assert type(back) is type(timetable)
    assert back == timetable
    assert (back.summary, back.description) == (timetable.summary, timetable.description)
    assert back.timezone == timetable.timezone


@pytest.mark.parametrize(
    "data", [{"type": "lunar"}, {"type": "cron"}, {}, {"type": "delta", "delta": 5}]
)
def test_deserialize_rejects_bad_data(data: dict[str, Any]) -> None:
    with pytest.raises(DagDefinitionError, match="cannot deserialize timetable"):
        deserialize_timetable(data)
