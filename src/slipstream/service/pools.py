"""Pool actions: set, get, list, delete, import, export. ``default_pool`` can be resized but
never deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import AlreadyExistsError, InvalidInputError, PoolNotFound
from slipstream.service.files import read_json_object
from slipstream.service.updates import KEEP, Keep
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
    must_be_new: bool = False,
) -> PoolUsage:
    """Create or update a pool; return it with its current usage. ``must_be_new`` refuses
    (:class:`AlreadyExistsError`) a name that is taken, in the same transaction."""
    _check(name, slots)
    with transaction(factory) as session:
        if must_be_new and store.get(session, name) is not None:
            raise AlreadyExistsError(f"pool {name!r} already exists")
        created = store.upsert(session, name, slots, description)
        audit.record(
            session,
            "pool.set",
            owner=actor,
            extra={"pool": name, "slots": slots, "created": created},
        )
        return store.list_usage(session, name)[0]


def create_pool(
    factory: sessionmaker[Session],
    name: str,
    slots: int,
    description: str | None = None,
    *,
    actor: str,
) -> PoolUsage:
    """Create a pool; :class:`AlreadyExistsError` when the name is taken."""
    return set_pool(factory, name, slots, description, actor=actor, must_be_new=True)


def update_pool(
    factory: sessionmaker[Session],
    name: str,
    *,
    slots: int | Keep = KEEP,
    description: str | Keep | None = KEEP,
    actor: str,
) -> PoolUsage:
    """Change the slots and/or the description (None clears it) of an existing pool
    (``default_pool`` included); what is KEEP stays."""
    with transaction(factory) as session:
        row = store.get(session, name)
        if row is None:
            raise PoolNotFound(f"pool {name!r} does not exist")
        new_slots = row.slots if slots is KEEP else slots
        _check(name, new_slots)
        new_description = row.description if description is KEEP else description
        store.update(session, name, new_slots, new_description)
        audit.record(
            session,
            "pool.set",
            owner=actor,
            extra={"pool": name, "slots": new_slots, "created": False},
        )
        return store.list_usage(session, name)[0]


def _check(name: str, slots: int) -> None:
    if not name.strip():
        raise InvalidInputError("a pool name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"pool name is longer than {MAX_NAME_LENGTH} characters")
    if slots < 0:
        raise InvalidInputError(f"pool {name!r} cannot have a negative number of slots ({slots})")


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


def parse_pools_file(path: Path) -> dict[str, tuple[int, str | None]]:
    """Airflow's pools file: ``{"name": {"slots": 4, "description": "..."}}``."""
    data = read_json_object(path, "pools file")
    pools: dict[str, tuple[int, str | None]] = {}
    for name, spec in data.items():
        if not isinstance(spec, dict) or "slots" not in spec:
            raise InvalidInputError(f'pools file {path}: pool {name!r} needs a "slots" number')
        slots, description = spec["slots"], spec.get("description")
        if isinstance(slots, bool) or not isinstance(slots, int):
            raise InvalidInputError(f"pools file {path}: slots of pool {name!r} must be an integer")
        if description is not None and not isinstance(description, str):
            raise InvalidInputError(f"pools file {path}: description of {name!r} must be text")
        _check(name, slots)
        pools[name] = (slots, description)
    return pools


def import_pools(factory: sessionmaker[Session], path: Path, *, actor: str) -> int:
    """Create or update every pool in ``path`` in one transaction (all or nothing)."""
    pools = parse_pools_file(path)
    with transaction(factory) as session:
        for name, (slots, description) in pools.items():
            created = store.upsert(session, name, slots, description)
            audit.record(
                session,
                "pool.set",
                owner=actor,
                extra={"pool": name, "slots": slots, "created": created, "source": str(path)},
            )
    return len(pools)


def export_pools(factory: sessionmaker[Session]) -> dict[str, dict[str, Any]]:
    """Every pool in the format :func:`import_pools` reads."""
    return {p.pool: {"slots": p.slots, "description": p.description} for p in list_pools(factory)}
