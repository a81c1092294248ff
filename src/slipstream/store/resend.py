"""Queued tries whose message may have been lost: find them, and record each re-send.

With a broker between the scheduler and the workers (Celery), a try can stay ``queued``
for ever if its message is lost — a broker restarted without persistence, say. The
scheduler sends such tries again (:mod:`slipstream.scheduler.upkeep`); these queries find
them and record the re-send by compare-and-set, so each is re-sent at most once per
interval however many schedulers look. The caller owns the transaction.

When a try's message was last sent is its ``updated_at``: the queueing writes it, and
nothing else writes a queued row until a worker claims it. ``queued_at`` is left alone:
the claim order (oldest first) and the Gantt chart keep the time the try was queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from slipstream.states import TaskInstanceState
from slipstream.store.models import TaskInstance

# The queue's own row shape, so a re-sent try is the same message as the first.
from slipstream.store.queue import _REF_COLUMNS, TryRef, _ref_from_row

_TI = cast(Table, TaskInstance.__table__)
_QUEUED = TaskInstanceState.QUEUED.value


@dataclass(frozen=True)
class QueuedTry:
    """A queued try, with when it was queued and when its message was last sent."""

    ref: TryRef
    queued_at: datetime | None
    #: the queueing, or the last re-send
    sent_at: datetime | None


_NOT_SENT_SINCE = _TI.c.updated_at.is_(None) | (_TI.c.updated_at <= bindparam("k_sent_before"))
_QUEUED_LOCKED = (
    select(*(_TI.c[c.key] for c in _REF_COLUMNS), _TI.c.queued_at, _TI.c.updated_at)
    .where(_TI.c.state == _QUEUED, _NOT_SENT_SINCE)
    .order_by(_TI.c.priority_weight.desc(), _TI.c.queued_at, _TI.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


def queued_tries(session: Session, *, sent_before: datetime, limit: int) -> list[QueuedTry]:
    """Up to ``limit`` queued tries not sent since ``sent_before``, in claim order, locked;
    rows a worker is claiming right now are left out. (Only those: a long backlog of
    tries sent recently is neither read nor locked.)"""
    rows = session.connection().execute(
        _QUEUED_LOCKED, {"k_sent_before": sent_before, "limit": limit}
    )
    return [QueuedTry(_ref_from_row(row), row.queued_at, row.updated_at) for row in rows]


_RESENT = (
    update(_TI)
    .where(
        _TI.c.id == bindparam("k_id"),
        _TI.c.try_number == bindparam("k_try_number"),
        _TI.c.state == _QUEUED,
        _NOT_SENT_SINCE,
    )
    .values(updated_at=bindparam("v_now"))
)


def mark_resent(session: Session, ref: TryRef, *, sent_before: datetime, now: datetime) -> bool:
    """Record that the try's message is sent again now, if it is still queued under that
    try number and was not sent since ``sent_before``: a try is re-sent at most once per
    interval, by one scheduler."""
    result = session.connection().execute(
        _RESENT,
        {
            "k_id": ref.ti_id,
            "k_try_number": ref.try_number,
            "k_sent_before": sent_before,
            "v_now": now,
        },
    )
    return result.rowcount == 1
