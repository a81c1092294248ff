"""Sensors that wait for a moment: ``TimeDeltaSensor`` and ``DateTimeSensor``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from slipstream.clock import ensure_utc, utcnow
from slipstream.errors import DagDefinitionError
from slipstream.sdk.context import Context
from slipstream.sdk.sensors.base import BaseSensorOperator


class _WallClockSensor(BaseSensorOperator):
    """A sensor that compares the wall-clock time with a target."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Seam for tests, not API: the current time, aware in UTC.
        self._utcnow: Callable[[], datetime] = utcnow

    def _reached(self, target: datetime) -> bool:
        now = self._utcnow()
        print(f"Checking whether {now.isoformat()} is past {target.isoformat()}")
        return now > target


class TimeDeltaSensor(_WallClockSensor):
    """Waits until ``delta`` after the end of the run's data interval (Airflow's rule):
    a ``@daily`` run for 2024-01-01 with ``delta=timedelta(hours=2)`` waits until
    2024-01-02 02:00 UTC."""

    def __init__(self, *, delta: timedelta, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(delta, timedelta):
            raise DagDefinitionError(
                f"task {self.task_id!r}: delta must be a timedelta, not {delta!r}"
            )
        self.delta = delta

    def poke(self, context: Context) -> bool:
        end = context.get("data_interval_end") or context["logical_date"]
        return self._reached(ensure_utc(end) + self.delta)


class DateTimeSensor(_WallClockSensor):
    """Waits until ``target_time``: a datetime, or an ISO 8601 string that may be a template
    such as ``"{{ data_interval_end + macros.timedelta(hours=1) }}"``. A time without an
    offset is taken as UTC."""

    template_fields = ("target_time",)

    def __init__(self, *, target_time: str | datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Kept as a string, as Airflow does, so that it can hold a template.
        if isinstance(target_time, datetime):
            self.target_time = target_time.isoformat()
        elif isinstance(target_time, str):
            self.target_time = target_time
        else:
            raise DagDefinitionError(
                f"task {self.task_id!r}: target_time must be a datetime or a string, "
                f"not {type(target_time).__name__}"
            )

    def target(self) -> datetime:
        """The (rendered) target time, aware in UTC."""
        try:
            return ensure_utc(datetime.fromisoformat(self.target_time.strip()))
        except ValueError:
            raise DagDefinitionError(
                f"task {self.task_id!r}: target_time {self.target_time!r} is not an ISO 8601 date and time"
            ) from None

    def poke(self, context: Context) -> bool:
        return self._reached(self.target())
