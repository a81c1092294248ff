"""The vocabulary every timetable speaks: intervals, run infos, restrictions, the ABC.

Also owns time-zone parsing, because a time zone is part of every timetable's serialized
form. Nothing here does I/O or reads a clock: ``now`` is always an argument.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slipstream.clock import ensure_utc
from slipstream.errors import DagDefinitionError

__all__ = [
    "DagRunInfo",
    "DataInterval",
    "TimeRestriction",
    "Timetable",
    "parse_timezone",
    "timezone_name",
]


@dataclass(frozen=True)
class DataInterval:
    """The span of data a DAG run covers: ``[start, end)``, both aware UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # Normalise here so every producer (and every test) compares like with like.
        object.__setattr__(self, "start", ensure_utc(self.start))
        object.__setattr__(self, "end", ensure_utc(self.end))

    @classmethod
    def exact(cls, at: datetime) -> DataInterval:
        """An empty interval at one instant (``@once``, manual-only DAGs)."""
        return cls(start=at, end=at)


@dataclass(frozen=True)
class DagRunInfo:
    """What the scheduler needs to create one run: its identity and when it may start."""

    logical_date: datetime
    data_interval: DataInterval
    run_after: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "logical_date", ensure_utc(self.logical_date))
        object.__setattr__(self, "run_after", ensure_utc(self.run_after))

    @classmethod
    def interval(cls, start: datetime, end: datetime) -> DagRunInfo:
        """Airflow 2 data-interval semantics: named after its start, runs once it has ended."""
        return cls(logical_date=start, data_interval=DataInterval(start, end), run_after=end)

    @classmethod
    def exact(cls, at: datetime) -> DagRunInfo:
        return cls(logical_date=at, data_interval=DataInterval.exact(at), run_after=at)


@dataclass(frozen=True)
class TimeRestriction:
    """Bounds from the DAG: ``earliest`` is its start_date, ``latest`` its end_date."""

    earliest: datetime | None
    latest: datetime | None
    catchup: bool

    def __post_init__(self) -> None:
        if self.earliest is not None:
            object.__setattr__(self, "earliest", ensure_utc(self.earliest))
        if self.latest is not None:
            object.__setattr__(self, "latest", ensure_utc(self.latest))


class Timetable(ABC):
    """Decides when runs of a DAG happen. Implementations are immutable and pure."""

    #: the ``type`` key of :meth:`serialize`; :func:`deserialize_timetable` dispatches on it
    type_name: ClassVar[str]

    summary: str
    description: str
    periodic: bool = True
    can_be_scheduled: bool = True

    def __init__(self, timezone: str | tzinfo = "UTC") -> None:
        self.timezone = parse_timezone(timezone)

    @abstractmethod
    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """The next automated run after ``last_automated_data_interval``, or None if there is none."""

    @abstractmethod
    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The data interval of a run triggered by hand at ``run_after``."""

    def serialize(self) -> dict[str, Any]:
        return {"type": self.type_name, "timezone": timezone_name(self.timezone)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timetable):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.serialize().items())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.summary!r}, timezone={timezone_name(self.timezone)!r})"


_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_timezone(tz: str | tzinfo) -> tzinfo:
    """Turn a name (``"Europe/Paris"``, ``"UTC"``, ``"+02:00"``) or a tzinfo into a tzinfo.

    The result is a :class:`ZoneInfo` or a fixed-offset :class:`datetime.timezone`, the two
    kinds :func:`timezone_name` can name again, so a timetable always serializes.
    """
    if isinstance(tz, ZoneInfo):
        return tz
    if isinstance(tz, timezone):
        return ZoneInfo("UTC") if tz.utcoffset(None) == timedelta(0) else tz
    if isinstance(tz, tzinfo):
        # pendulum / dateutil zones carry their IANA name under one of these attributes
        name = getattr(tz, "key", None) or getattr(tz, "name", None) or getattr(tz, "zone", None)
        if isinstance(name, str):
            return parse_timezone(name)
        raise DagDefinitionError(
            f"time zone {tz!r} has no IANA name; give a name such as 'Europe/Paris' instead"
        )
    if not isinstance(tz, str):
        raise DagDefinitionError(f"a time zone must be a name or a tzinfo, not {type(tz).__name__}")
    name = tz.strip()
    if match := _OFFSET_RE.match(name):
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        if offset >= timedelta(hours=24):
            raise DagDefinitionError(f"unknown time zone {tz!r}: offset out of range")
        return parse_timezone(timezone(-offset if sign == "-" else offset))
    if name.upper() in ("UTC", "Z", "GMT"):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DagDefinitionError(
            f"unknown time zone {tz!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None


def timezone_name(tz: tzinfo) -> str:
    """The name :func:`parse_timezone` reads back to the same zone."""
    if isinstance(tz, ZoneInfo):
        return tz.key
    offset = tz.utcoffset(None) or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
