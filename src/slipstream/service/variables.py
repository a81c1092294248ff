"""Variable actions: set, get, list, delete, import and export.

Each function opens its own transaction and writes an audit row for every change. Import is
one transaction: a bad file writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import MultiFernet
from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import AlreadyExistsError, InvalidInputError, VariableNotFound
from slipstream.service.files import read_json_object
from slipstream.service.updates import KEEP, Keep
from slipstream.store import audit
from slipstream.store import variables as store
from slipstream.store.db import transaction
from slipstream.store.variables import VariableRecord

MAX_KEY_LENGTH = 250


def _check_key(key: str) -> None:
    if not key.strip():
        raise InvalidInputError("a variable key cannot be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(
            f"variable key {key[:40]!r}... is longer than {MAX_KEY_LENGTH} characters"
        )


def _as_text(value: Any) -> str:
    # Strings are stored as they are; anything else as JSON, so Variable.get(...,
    # deserialize_json=True) gives the same structure back.
    return value if isinstance(value, str) else json.dumps(value)


def set_variable(
    factory: sessionmaker[Session],
    fernet: MultiFernet,
    key: str,
    value: str,
    *,
    description: str | None = None,
    actor: str,
    must_be_new: bool = False,
) -> bool:
    """Create or replace a variable. True when it was created. ``must_be_new`` refuses
    (:class:`AlreadyExistsError`) a key that is taken, in the same transaction."""
    _check_key(key)
    with transaction(factory) as session:
        if must_be_new and store.get(session, fernet, key) is not None:
            raise AlreadyExistsError(f"variable {key!r} already exists")
        created = store.upsert(session, fernet, key, value, description)
        audit.record(session, "variable.set", owner=actor, extra={"key": key, "created": created})
    return created


def create_variable(
    factory: sessionmaker[Session],
    fernet: MultiFernet,
    key: str,
    value: str,
    *,
    description: str | None = None,
    actor: str,
) -> VariableRecord:
    """Create a variable; :class:`AlreadyExistsError` when ``key`` is taken."""
    set_variable(
        factory, fernet, key, value, description=description, actor=actor, must_be_new=True
    )
    return VariableRecord(key, value, description)


def update_variable(
    factory: sessionmaker[Session],
    fernet: MultiFernet,
    key: str,
    *,
    value: str | Keep = KEEP,
    description: str | Keep | None = KEEP,
    actor: str,
) -> VariableRecord:
    """Change the value and/or the description (None clears it) of an existing variable;
    what is KEEP stays."""
    with transaction(factory) as session:
        current = store.get(session, fernet, key)
        if current is None:
            raise VariableNotFound(f"variable {key!r} does not exist")
        record = VariableRecord(
            key,
            current.value if value is KEEP else value,
            current.description if description is KEEP else description,
        )
        store.update(session, fernet, key, record.value, record.description)
        changed = [
            name for name, v in (("value", value), ("description", description)) if v is not KEEP
        ]
        audit.record(
            session,
            "variable.set",
            owner=actor,
            extra={"key": key, "created": False, "fields": changed},
        )
    return record


def get_variable(factory: sessionmaker[Session], fernet: MultiFernet, key: str) -> VariableRecord:
    with transaction(factory) as session:
        record = store.get(session, fernet, key)
    if record is None:
        raise VariableNotFound(f"variable {key!r} does not exist")
    return record


def list_variables(factory: sessionmaker[Session], fernet: MultiFernet) -> list[VariableRecord]:
    with transaction(factory) as session:
        return store.list_all(session, fernet)


def delete_variable(factory: sessionmaker[Session], key: str, *, actor: str) -> None:
    with transaction(factory) as session:
        if not store.delete(session, key):
            raise VariableNotFound(f"variable {key!r} does not exist")
        audit.record(session, "variable.delete", owner=actor, extra={"key": key})


def parse_import_file(path: Path) -> dict[str, str]:
    """Read a JSON object of key → value; non-string values become their JSON text."""
    data = read_json_object(path, "variables file")
    for key in data:
        _check_key(key)
    return {key: _as_text(value) for key, value in data.items()}


def import_variables(
    factory: sessionmaker[Session], fernet: MultiFernet, path: Path, *, actor: str
) -> int:
    """Set every variable in the JSON file ``path`` in one transaction; return how many."""
    values = parse_import_file(path)
    return set_many(factory, fernet, values, actor=actor, source=str(path))


def set_many(
    factory: sessionmaker[Session],
    fernet: MultiFernet,
    values: Mapping[str, str],
    *,
    actor: str,
    source: str | None = None,
) -> int:
    with transaction(factory) as session:
        for key, value in values.items():
            store.upsert(session, fernet, key, value)
        audit.record(
            session,
            "variable.import",
            owner=actor,
            extra={"count": len(values), "keys": sorted(values), "source": source},
        )
    return len(values)


def export_variables(factory: sessionmaker[Session], fernet: MultiFernet) -> dict[str, Any]:
    """Every variable as key → value, JSON values decoded (Airflow's export format)."""
    exported: dict[str, Any] = {}
    for record in list_variables(factory, fernet):
        try:
            exported[record.key] = json.loads(record.value)
        except json.JSONDecodeError:
            exported[record.key] = record.value
    return exported
