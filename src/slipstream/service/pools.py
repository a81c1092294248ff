"""Pool actions: set, get, list, delete. ``default_pool`` can be resized but never deleted."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import InvalidInputError, PoolNotFound
from slipstream.store import audit
from slipstream.store import pools as store
from slipstream.store.db import transaction
from slipstream.store.pools import DEFAULT_POOL, PoolUsage

MAX_NAME_LENGTH = 256


def set_pool(
    factory: sessionmaker[Session],
    name: str,
    slots: int,
    description: str | None = None,
    *,
    actor: str,
) -> PoolUsage:
    """Create or update a pool; return it with its current usage."""
    if not name.strip():
        raise InvalidInputError("a pool name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"pool name is longer than {MAX_NAME_LENGTH} characters")
    if slots < 0:
        raise InvalidInputError(f"pool {name!r} cannot have a negative number of slots ({slots})")
    with transaction(factory) as session:
        created = store.upsert(session, name, slots, description)
        audit.record(
            session,
            "pool.set",
            owner=actor,
            extra={"pool": name, "slots": slots, "created": created},
        )
        return store.list_usage(session, name)[0]


def get_pool(factory: sessionmaker[Session], name: str) -> PoolUsage:
    with transaction(factory) as session:
        found = store.list_usage(session, name)
    if not found:
        raise PoolNotFound(f"pool {name!r} does not exist")
    return found[0]


def list_pools(factory: sessionmaker[Session]) -> list[PoolUsage]:
    with transaction(factory) as session:
        return store.list_usage(session)


def delete_pool(factory: sessionmaker[Session], name: str, *, actor: str) -> None:
    if name == DEFAULT_POOL:
        raise InvalidInputError(f"{DEFAULT_POOL} cannot be deleted (set its slots instead)")
    with transaction(factory) as session:
        if not store.delete(session, name):
            raise PoolNotFound(f"pool {name!r} does not exist")
        audit.record(session, "pool.delete", owner=actor, extra={"pool": name})
