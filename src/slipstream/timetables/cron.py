"""Cron schedules evaluated in the DAG's time zone, correct across DST changes.

Cron speaks in local wall-clock times; the scheduler speaks in UTC instants. The mapping
between them breaks twice a year: in the spring gap some wall times do not exist, in the
autumn overlap some exist twice. The rules here (Airflow's intent, made exact):

* a wall time in the gap fires once, shifted forward by the gap (02:30 -> 03:30 CEST);
* a wall time in the overlap fires once for a fixed-time schedule (single minute and hour,
  e.g. ``30 2 * * *``: "once a day"), at its first occurrence; for any other schedule
  (``0 * * * *``) it fires at both occurrences, so "hourly" stays hourly in real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from croniter import CroniterBadDateError, CroniterError, croniter

from slipstream.clock import ensure_utc
from slipstream.errors import DagDefinitionError
from slipstream.timetables.base import DataInterval, timezone_name
from slipstream.timetables.interval import DataIntervalTimetable

__all__ = ["CRON_PRESETS", "CronDataIntervalTimetable"]

CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

# Wider than any UTC-offset change in tzdata (the largest DST shift is 2 h), so a window
# this wide around an instant sees every wall time that could map next to it.
_MARGIN = timedelta(hours=3)
_TICK = timedelta(microseconds=1)
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip


class CronDataIntervalTimetable(DataIntervalTimetable):
    """A cron expression or preset; each run covers one cron period (Airflow 2 semantics)."""

    type_name = "cron"

    def __init__(self, cron: str, timezone: str | tzinfo = "UTC") -> None:
        super().__init__(timezone)
        self.summary = cron
        self.expression = _validate(cron)
        fields = croniter(self.expression).expanded
        self._fixed_time = all(len(f) == 1 and f[0] != "*" for f in fields[:2])
        self.description = f"{describe_cron(self.expression)} ({timezone_name(self.timezone)})"

    # --- the wall-clock <-> instant mapping -------------------------------------------

    def _wall(self, t: datetime) -> datetime:
        """Local naive wall time of the instant ``t``."""
        return t.astimezone(self.timezone).replace(tzinfo=None)

    def _instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants at which a cron fire at local ``wall`` happens (see module doc)."""
        first = wall.replace(tzinfo=self.timezone, fold=0)
        second = wall.replace(tzinfo=self.timezone, fold=1)
        first_utc = first.astimezone(UTC)
        if first.utcoffset() == second.utcoffset():
            return [first_utc]
        # fold=0 reads a gap time with the offset before the change, which is exactly the
        # "shift forward" reading, so only a real overlap can yield two instants.
        in_gap = self._wall(first_utc) != wall
        if in_gap or self._fixed_time:
            return [first_utc]
        return [first_utc, second.astimezone(UTC)]

    def _steady(self, t: datetime) -> bool:
        """True if the UTC offset does not change within ``_MARGIN`` of ``t``."""
        before = (t - _MARGIN).astimezone(self.timezone).utcoffset()
        return before == (t + _MARGIN).astimezone(self.timezone).utcoffset()

    def _walls(self, start: datetime, forward: bool) -> Iterator[datetime]:
        it = croniter(self.expression, start)
        while True:
            yield it.get_next(datetime) if forward else it.get_prev(datetime)

    def _next_boundary(self, t: datetime) -> datetime:
        t = ensure_utc(t)
        if self._steady(t):
            # Fast path, away from any offset change: one cron step is the answer.
            found = self._instants(next(self._walls(self._wall(t), forward=True)))
            if len(found) == 1 and self._steady(found[0]):
                return found[0]
        # Near an offset change wall order and instant order disagree, so look at every
        # wall time from a margin before ``t`` until one margin past the best candidate.
        best: tuple[datetime, datetime] | None = None  # (instant, wall)
        for wall in self._walls(self._wall(t) - _MARGIN, forward=True):
            if best is not None and wall > best[1] + _MARGIN:
                return best[0]
            for instant in self._instants(wall):
                if instant > t and (best is None or instant < best[0]):
                    best = (instant, wall)
        raise AssertionError("unreachable: croniter iterates forever")  # pragma: no cover

    def _prev_boundary(self, t: datetime) -> datetime:
        t = ensure_utc(t)
        if self._steady(t):
            found = self._instants(next(self._walls(self._wall(t), forward=False)))
            if len(found) == 1 and self._steady(found[0]):
                return found[0]
        best: tuple[datetime, datetime] | None = None
        for wall in self._walls(self._wall(t) + _MARGIN, forward=False):
            if best is not None and wall < best[1] - _MARGIN:
                return best[0]
            for instant in self._instants(wall):
                if instant < t and (best is None or instant > best[0]):
                    best = (instant, wall)
        raise AssertionError("unreachable: croniter iterates forever")  # pragma: no cover

    def _align_to_next(self, t: datetime) -> datetime:
        return self._next_boundary(ensure_utc(t) - _TICK)

    def _align_to_prev(self, t: datetime) -> datetime:
        return self._prev_boundary(ensure_utc(t) + _TICK)

    def _skip_to_latest(self, earliest: datetime | None, now: datetime) -> datetime:
        last_start = self._prev_boundary(now)
        if self._next_boundary(last_start) == now:
            latest = last_start  # ``now`` is a boundary: the interval ending now is complete
        else:
            latest = self._prev_boundary(last_start)
        return latest if earliest is None else max(latest, self._align_to_next(earliest))

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        # The last complete period: a daily DAG triggered at 01:00 on the 25th covers the 24th.
        end = self._align_to_prev(ensure_utc(run_after))
        return DataInterval(start=self._prev_boundary(end), end=end)

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "expression": self.summary}


def _validate(cron: str) -> str:
    """The 5-field expression behind ``cron``, or a DagDefinitionError saying what is wrong."""
    if not isinstance(cron, str):
        raise DagDefinitionError(f"invalid schedule {cron!r}: expected a cron string")
    text = cron.strip()
    if text.startswith("@"):
        if text.lower() not in CRON_PRESETS:
            known = ", ".join([*CRON_PRESETS, "@once"])
            raise DagDefinitionError(f"invalid schedule {cron!r}: unknown preset (known: {known})")
        return CRON_PRESETS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise DagDefinitionError(
            f"invalid schedule {cron!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    expression = " ".join(fields)
    try:
        # Also proves the expression ever fires: '0 0 31 4 *' parses but never happens.
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise DagDefinitionError(f"invalid schedule {cron!r}: it never fires") from None
    except (CroniterError, ValueError, KeyError) as exc:
        raise DagDefinitionError(f"invalid schedule {cron!r}: {exc}") from None
    return expression


def describe_cron(expression: str) -> str:
    """A short English sentence for common 5-field expressions; the raw fields otherwise."""
    minute, hour, dom, month, dow = expression.split()
    if minute.isdigit() and hour.isdigit():
        when = f"At {int(hour):02d}:{int(minute):02d}"
    elif minute.isdigit() and hour == "*":
        when = f"At minute {int(minute)} past every hour"
    elif minute == "*" and hour == "*":
        when = "Every minute"
    elif minute.startswith("*/") and hour == "*":
        when = f"Every {minute[2:]} minutes"
    else:
        when = f"At minute {minute} past hour {hour}"
    if dom == "*" and dow == "*":
        days = " every day" if month == "*" else ""
    elif dom == "*":
        days = f" on {_name_list(dow, _DAYS, 0)}"
    elif dow == "*":
        days = f" on day {dom} of the month"
    else:
        days = f" on day {dom} of the month or on {_name_list(dow, _DAYS, 0)}"
    months = "" if month == "*" else f" in {_name_list(month, _MONTHS, 1)}"
    return when + days + months


def _name_list(field: str, names: list[str], first: int) -> str:
    """Spell plain numbers in a cron field (``1,5`` -> ``Monday and Friday``) when it is simple."""
    items = field.split(",")
    if not all(i.isdigit() and 0 <= int(i) - first <= len(names) for i in items):
        return field
    spelled = [names[(int(i) - first) % len(names)] for i in items]
    return spelled[0] if len(spelled) == 1 else ", ".join(spelled[:-1]) + " and " + spelled[-1]
