"""Data-interval scheduling (Airflow 2 semantics) and the simple timetables.

A data-interval timetable names each run after the start of the interval it covers and
lets it run once that interval has ended. :class:`DataIntervalTimetable` holds the catchup
and end_date rules once; subclasses only say how the schedule steps (cron, timedelta).
``@once`` and manual-only (``None``) DAGs live here too, being too small for a module.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from slipstream.clock import ensure_utc
from slipstream.errors import DagDefinitionError
from slipstream.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable

__all__ = [
    "DataIntervalTimetable",
    "DeltaDataIntervalTimetable",
    "NullTimetable",
    "OnceTimetable",
]

# Where a timedelta schedule is anchored when the DAG has no start_date.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DataIntervalTimetable(Timetable):
    """Runs cover back-to-back intervals on a schedule; subclasses define the schedule."""

    @abstractmethod
    def _next_boundary(self, t: datetime) -> datetime:
        """The first schedule boundary strictly after ``t``."""

    @abstractmethod
    def _prev_boundary(self, t: datetime) -> datetime:
        """The last schedule boundary strictly before ``t``."""

    @abstractmethod
    def _align_to_next(self, t: datetime) -> datetime:
        """``t`` if it is a boundary, else the next boundary."""

    @abstractmethod
    def _align_to_prev(self, t: datetime) -> datetime:
        """``t`` if it is a boundary, else the previous boundary."""

    @abstractmethod
    def _skip_to_latest(self, earliest: datetime | None, now: datetime) -> datetime:
        """Start of the latest interval complete at ``now``, but not before ``earliest``."""

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        now = ensure_utc(now)
        earliest = restriction.earliest
        if not restriction.catchup:
            # Without catchup the missed intervals are dropped: start from the latest one
            # that is complete now (never before start_date).
            earliest = self._skip_to_latest(earliest, now)
        elif earliest is not None:
            earliest = self._align_to_next(earliest)
        if last_automated_data_interval is None:
            if earliest is None:
                return None  # catchup with no start_date: nowhere to begin
            start = earliest
        else:
            # Re-aligning keeps the schedule on its grid if the DAG's schedule was changed.
            start = self._align_to_prev(last_automated_data_interval.end)
            if earliest is not None:
                start = max(start, earliest)
        if restriction.latest is not None and start > restriction.latest:
            return None
        return DagRunInfo.interval(start=start, end=self._next_boundary(start))


class DeltaDataIntervalTimetable(DataIntervalTimetable):
    """Every ``delta`` of absolute time, on a grid anchored at the DAG's start_date.

    Airflow anchors a catchup=False DAG at ``now - delta`` instead, so its runs drift with
    the scheduler's clock; anchoring at start_date keeps logical dates predictable.
    """

    type_name = "delta"

    def __init__(self, delta: timedelta, timezone: str | tzinfo = "UTC") -> None:
        super().__init__(timezone)
        if not isinstance(delta, timedelta):
            raise DagDefinitionError(f"invalid schedule {delta!r}: expected a timedelta")
        if delta <= timedelta(0):
            raise DagDefinitionError(
                f"invalid schedule {delta!r}: a timedelta schedule must be positive"
            )
        self.delta = delta
        self.summary = str(delta)
        self.description = f"Every {_humanize(delta)}"

    def _next_boundary(self, t: datetime) -> datetime:
        return t + self.delta

    def _prev_boundary(self, t: datetime) -> datetime:
        return t - self.delta

    # A timedelta schedule has no grid of its own apart from its anchor: any instant is
    # a boundary, as in Airflow.
    def _align_to_next(self, t: datetime) -> datetime:
        return t

    def _align_to_prev(self, t: datetime) -> datetime:
        return t

    def _skip_to_latest(self, earliest: datetime | None, now: datetime) -> datetime:
        anchor = earliest if earliest is not None else _EPOCH
        periods = (now - anchor) // self.delta
        latest_start = anchor + (periods - 1) * self.delta
        return latest_start if earliest is None else max(latest_start, earliest)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        run_after = ensure_utc(run_after)
        return DataInterval(start=run_after - self.delta, end=run_after)

    def serialize(self) -> dict[str, Any]:
        d = self.delta
        return {
            **super().serialize(),
            "delta": {"days": d.days, "seconds": d.seconds, "microseconds": d.microseconds},
        }


class OnceTimetable(Timetable):
    """``@once``: a single run at the start_date, whatever catchup says (as in Airflow)."""

    type_name = "once"
    periodic = False

    def __init__(self, timezone: str | tzinfo = "UTC") -> None:
        super().__init__(timezone)
        self.summary = "@once"
        self.description = "Once, at the start date"

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        if last_automated_data_interval is not None or restriction.earliest is None:
            return None  # it ran already, or there is no start date to run at
        if restriction.latest is not None and restriction.earliest > restriction.latest:
            return None
        return DagRunInfo.exact(restriction.earliest)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return DataInterval.exact(run_after)


class NullTimetable(Timetable):
    """``schedule=None``: runs only when triggered."""

    type_name = "null"
    periodic = False
    can_be_scheduled = False

    def __init__(self, timezone: str | tzinfo = "UTC") -> None:
        super().__init__(timezone)
        self.summary = "None"
        self.description = "Never, external triggers only"

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        return None

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return DataInterval.exact(run_after)


def _humanize(delta: timedelta) -> str:
    """``timedelta(hours=6)`` -> ``"6 hours"``; mixed units are joined with commas."""
    rest = delta
    parts: list[str] = []
    for name, unit in (
        ("day", timedelta(days=1)),
        ("hour", timedelta(hours=1)),
        ("minute", timedelta(minutes=1)),
        ("second", timedelta(seconds=1)),
    ):
        count, rest = divmod(rest, unit)
        if count:
            parts.append(f"{count} {name}" + ("s" if count != 1 else ""))
    if rest or not parts:
        parts.append(f"{rest.microseconds} microseconds")
    return ", ".join(parts)
