"""The Gantt chart's geometry: where each try's bar goes, computed on the server so the
page draws it as plain SVG (positions as attributes: nothing for the CSP to refuse).

Pure functions of the bars and the time: no Flask, no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from slipstream.service.overview import GanttBar

LABEL_WIDTH = 220
CHART_WIDTH = 760
ROW_HEIGHT = 22
AXIS_HEIGHT = 24
#: tick spacings to choose from, in seconds: the first that gives at most MAX_TICKS ticks
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
MAX_TICKS = 8


@dataclass(frozen=True)
class Bar:
    task_id: str
    try_number: int
    state: str
    x: float
    width: float
    #: the part spent queued, before the try started (0 wide when unknown)
    queued_x: float
    queued_width: float
    title: str


@dataclass(frozen=True)
class Row:
    task_id: str
    y: float
    bars: list[Bar]


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    label_width: int
    rows: list[Row]
    ticks: list[Tick]
    start: datetime | None
    end: datetime | None


def _bounds(bars: Sequence[GanttBar], now: datetime) -> tuple[datetime, datetime] | None:
    starts = [t for b in bars for t in (b.queued_at, b.start_date) if t is not None]
    if not starts:
        return None
    ends = [b.end_date or now for b in bars if b.start_date or b.queued_at]
    start, end = min(starts), max([*ends, *starts])
    if end <= start:
        end = start + timedelta(seconds=1)
    return start, end


def _step(span: float) -> int:
    for step in _STEPS:
        if span / step <= MAX_TICKS:
            return step
    return _STEPS[-1] * max(1, int(span // (_STEPS[-1] * MAX_TICKS)) + 1)


def _tick_label(value: datetime, step: int) -> str:
    if step >= 86400:
        return value.strftime("%m-%d")
    if step >= 60:
        return value.strftime("%H:%M")
    return value.strftime("%H:%M:%S")


def _seconds(value: datetime, start: datetime) -> float:
    return (value - start).total_seconds()


def chart(bars: Sequence[GanttBar], now: datetime) -> Chart:
    """The chart of ``bars`` (in the order of their rows: one row per task, its tries side
    by side); a try still going ends at ``now``."""
    order: dict[str, list[GanttBar]] = {}
    for bar in bars:
        order.setdefault(bar.task_id, []).append(bar)
    height = AXIS_HEIGHT + ROW_HEIGHT * max(1, len(order)) + 6
    width = LABEL_WIDTH + CHART_WIDTH
    bounds = _bounds(bars, now)
    if bounds is None:
        rows = [Row(t, AXIS_HEIGHT + i * ROW_HEIGHT, []) for i, t in enumerate(order)]
        return Chart(width, height, LABEL_WIDTH, rows, [], None, None)
    start, end = bounds
    span = _seconds(end, start)
    scale = (CHART_WIDTH - 12) / span

    def x_of(value: datetime) -> float:
        return round(LABEL_WIDTH + _seconds(value, start) * scale, 2)

    rows = []
    for index, (task_id, tries) in enumerate(order.items()):
        drawn = []
        for bar in tries:
            began = bar.start_date or bar.queued_at
            if began is None:
                continue
            finished = bar.end_date or now
            x = x_of(began)
            bar_width = max(2.0, round(_seconds(finished, began) * scale, 2))
            queued_x = queued_width = 0.0
            if bar.queued_at is not None and bar.start_date is not None:
                queued_x = x_of(bar.queued_at)
                queued_width = max(0.0, round(x - queued_x, 2))
            took = _seconds(finished, began)
            title = (
                f"{task_id} · try {bar.try_number} · {bar.state} · "
                f"{began.isoformat()} → {bar.end_date.isoformat() if bar.end_date else 'now'}"
                f" · {took:.1f}s"
            )
            drawn.append(
                Bar(task_id, bar.try_number, bar.state, x, bar_width, queued_x, queued_width, title)
            )
        rows.append(Row(task_id, AXIS_HEIGHT + index * ROW_HEIGHT, drawn))
    step = _step(span)
    first = start.replace(microsecond=0)
    offset = int(first.timestamp()) % step
    tick = first - timedelta(seconds=offset)
    if tick < start:
        tick += timedelta(seconds=step)
    ticks = []
    while tick <= end:
        ticks.append(Tick(x_of(tick), _tick_label(tick, step)))
        tick += timedelta(seconds=step)
    return Chart(width, height, LABEL_WIDTH, rows, ticks, start, end)
