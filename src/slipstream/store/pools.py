"""Queries on pools, and how many of each pool's slots running and queued tasks occupy."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipstream.states import TaskInstanceState
from slipstream.store.models import Pool, TaskInstance

DEFAULT_POOL = "default_pool"

# A task holds its pool slots from the moment it is queued until its try ends.
OCCUPYING_STATES = (
    TaskInstanceState.RUNNING.value,
    TaskInstanceState.QUEUED.value,
    TaskInstanceState.RESTARTING.value,
)


@dataclass(frozen=True)
class PoolUsage:
    pool: str
    slots: int
    description: str | None
    running: int
    queued: int

    @property
    def occupied(self) -> int:
        return self.running + self.queued

    @property
    def open(self) -> int:
        return self.slots - self.occupied


def get(session: Session, name: str) -> Pool | None:
    return session.scalar(select(Pool).where(Pool.pool == name))


def slot_counts(session: Session) -> dict[str, int]:
    """Every pool's number of slots."""
    return {name: int(slots) for name, slots in session.execute(select(Pool.pool, Pool.slots))}


def slots_in_use(session: Session) -> dict[str, dict[str, int]]:
    """``{pool: {state: slots}}`` for running and queued task instances."""
    query = (
        select(TaskInstance.pool, TaskInstance.state, func.sum(TaskInstance.pool_slots))
        .where(TaskInstance.state.in_(OCCUPYING_STATES))
        .group_by(TaskInstance.pool, TaskInstance.state)
    )
    used: dict[str, dict[str, int]] = {}
    for pool, state, slots in session.execute(query):
        used.setdefault(pool, {})[state] = int(slots or 0)
    return used


def list_usage(session: Session, name: str | None = None) -> list[PoolUsage]:
    """Every pool (or just ``name``) with its slot usage, ordered by name."""
    query = select(Pool).order_by(Pool.pool)
    if name is not None:
        query = query.where(Pool.pool == name)
    used = slots_in_use(session)
    return [
        PoolUsage(
            pool=row.pool,
            slots=row.slots,
            description=row.description,
            # a cleared try still being stopped holds its slots like a running one
            running=used.get(row.pool, {}).get(TaskInstanceState.RUNNING.value, 0)
            + used.get(row.pool, {}).get(TaskInstanceState.RESTARTING.value, 0),
            queued=used.get(row.pool, {}).get(TaskInstanceState.QUEUED.value, 0),
        )
        for row in session.scalars(query)
    ]


def upsert(session: Session, name: str, slots: int, description: str | None = None) -> bool:
    """Create or update pool ``name``; a None description keeps the old one. True if created."""
    row = get(session, name)
    if row is None:
        session.add(Pool(pool=name, slots=slots, description=description, include_deferred=False))
        session.flush()
        return True
    row.slots = slots
    if description is not None:
        row.description = description
    return False


def delete(session: Session, name: str) -> bool:
    """Delete pool ``name``; True when it existed."""
    result = session.execute(sql_delete(Pool).where(Pool.pool == name))
    return bool(getattr(result, "rowcount", 0))


def update(session: Session, name: str, slots: int, description: str | None) -> bool:
    """Set the slots and the description (None clears it) of pool ``name``; False when
    there is no such pool."""
    row = get(session, name)
    if row is None:
        return False
    row.slots = slots
    row.description = description
    return True
