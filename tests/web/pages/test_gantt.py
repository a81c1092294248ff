"""The Gantt chart's geometry (pure): bars placed by time, queued parts before them, a
try still running drawn up to now, ticks at round times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slipstream.service.overview import GanttBar
from slipstream.web.views.gantt import CHART_WIDTH, LABEL_WIDTH, chart

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_bars_are_placed_by_time_one_row_per_task() -> None:
    bars = [
        GanttBar("a", 1, "failed", _at(0), _at(10), _at(20)),
        GanttBar("a", 2, "success", _at(30), _at(30), _at(40)),
        GanttBar("b", 1, "running", _at(40), _at(50), None),
    ]
    drawn = chart(bars, now=_at(60))
    assert [(r.task_id, len(r.bars)) for r in drawn.rows] == [("a", 2), ("b", 1)]
    first, second = drawn.rows[0].bars
    scale = (CHART_WIDTH - 12) / 60
    assert first.x == round(LABEL_WIDTH + 10 * scale, 2) and first.width == round(10 * scale, 2)
    assert first.queued_x == LABEL_WIDTH and first.queued_width == round(10 * scale, 2)
    assert second.x == round(LABEL_WIDTH + 30 * scale, 2)
    running = drawn.rows[1].bars[0]
    assert running.width == round(10 * scale, 2)  # from its start up to now
    assert "try 1 · running" in running.title and "now" in running.title
    # a minute wide: ticks every 10 seconds, labelled to the second
    assert [t.label for t in drawn.ticks] == [f"12:00:{s:02d}" for s in range(0, 60, 10)] + [
        "12:01:00"
    ]


def test_nothing_started_has_rows_but_no_bars_or_ticks() -> None:
    drawn = chart([GanttBar("a", 1, "queued", None, None, None)], now=T0)
    assert [r.bars for r in drawn.rows] == [[]] and drawn.ticks == [] and drawn.start is None
    assert chart([], now=T0).rows == []


def test_a_long_run_gets_coarser_ticks() -> None:
    bars = [GanttBar("a", 1, "success", None, _at(0), _at(3 * 3600))]
    labels = [t.label for t in chart(bars, now=_at(3 * 3600)).ticks]
    assert labels == ["12:00", "12:30", "13:00", "13:30", "14:00", "14:30", "15:00"]
