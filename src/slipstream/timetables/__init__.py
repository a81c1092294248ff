"""Timetables: when DAG runs happen. Pure functions of a schedule, its bounds and ``now``.

The DAG (``slipstream.sdk``) turns its ``schedule=`` into a :class:`Timetable` with
:func:`timetable_from_schedule`; the serialized DAG stores :meth:`Timetable.serialize`
and the scheduler, which never imports user code, gets it back with
:func:`deserialize_timetable`. Nothing here imports the sdk, the store or a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from slipstream.clock import ensure_utc
from slipstream.errors import DagDefinitionError
from slipstream.timetables.base import (
    DagRunInfo,
    DataInterval,
    TimeRestriction,
    Timetable,
    parse_timezone,
    timezone_name,
)
from slipstream.timetables.cron import CRON_PRESETS, CronDataIntervalTimetable, describe_cron
from slipstream.timetables.interval import (
    DataIntervalTimetable,
    DeltaDataIntervalTimetable,
    NullTimetable,
    OnceTimetable,
)

__all__ = [
    "CRON_PRESETS",
    "CronDataIntervalTimetable",
    "DagRunInfo",
    "DataInterval",
    "DataIntervalTimetable",
    "DeltaDataIntervalTimetable",
    "NullTimetable",
    "OnceTimetable",
    "TimeRestriction",
    "Timetable",
    "describe_cron",
    "deserialize_timetable",
    "next_run_infos",
    "parse_timezone",
    "timetable_from_schedule",
    "timezone_name",
]

ScheduleArg = str | timedelta | Timetable | None


def timetable_from_schedule(schedule: ScheduleArg, timezone: str | tzinfo = "UTC") -> Timetable:
    """The timetable for a DAG's ``schedule=`` argument, evaluated in ``timezone``.

    A Timetable passes through as given (it carries its own time zone).
    """
    if isinstance(schedule, Timetable):
        return schedule
    if schedule is None:
        return NullTimetable(timezone)
    if isinstance(schedule, timedelta):
        return DeltaDataIntervalTimetable(schedule, timezone)
    if isinstance(schedule, str):
        text = schedule.strip()
        if text.lower() == "@once":
            return OnceTimetable(timezone)
        if text.lower() == "@continuous":
            raise DagDefinitionError(f"invalid schedule {schedule!r}: @continuous is not supported")
        return CronDataIntervalTimetable(schedule, timezone)
    raise DagDefinitionError(
        f"invalid schedule {schedule!r}: expected a cron string, a preset such as '@daily', "
        f"a timedelta, None or a Timetable, not {type(schedule).__name__}"
    )


def deserialize_timetable(data: dict[str, Any]) -> Timetable:
    """Inverse of :meth:`Timetable.serialize`."""
    try:
        kind = data["type"]
        tz = data.get("timezone", "UTC")
        if kind == CronDataIntervalTimetable.type_name:
            return CronDataIntervalTimetable(data["expression"], tz)
        if kind == DeltaDataIntervalTimetable.type_name:
            return DeltaDataIntervalTimetable(timedelta(**data["delta"]), tz)
        if kind == OnceTimetable.type_name:
            return OnceTimetable(tz)
        if kind == NullTimetable.type_name:
            return NullTimetable(tz)
    except (KeyError, TypeError) as exc:
        raise DagDefinitionError(
            f"cannot deserialize timetable {data!r}: missing or bad {exc}"
        ) from None
    raise DagDefinitionError(f"cannot deserialize timetable {data!r}: unknown type {kind!r}")


def next_run_infos(
    timetable: Timetable,
    restriction: TimeRestriction,
    now: datetime,
    n: int,
    last_automated_data_interval: DataInterval | None = None,
) -> list[DagRunInfo]:
    """The next ``n`` automated runs, from where the scheduler would start at ``now``."""
    now = ensure_utc(now)
    infos: list[DagRunInfo] = []
    last = last_automated_data_interval
    while len(infos) < n:
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction, now=now
        )
        # The second test guards against a (custom) timetable that does not move forward.
        if info is None or (last is not None and info.data_interval == last):
            break
        infos.append(info)
        last = info.data_interval
    return infos
