"""Database lifecycle actions: migrate, check, reset, and re-encrypting secrets with a new key.

Schema changes are recorded in the audit log once the schema exists to hold the record.
"""

from __future__ import annotations

from cryptography.fernet import MultiFernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from slipstream.store import audit, schema
from slipstream.store import connections as connection_store
from slipstream.store import variables as variable_store
from slipstream.store.db import session_factory, transaction
from slipstream.store.schema import MigrationResult


def _audit(engine: Engine, event: str, actor: str, result: MigrationResult) -> None:
    with transaction(session_factory(engine)) as session:
        audit.record(session, event, owner=actor, extra={"from": result.before, "to": result.after})


def migrate(engine: Engine, *, actor: str) -> MigrationResult:
    """Bring the schema to head; audited only when something changed."""
    result = schema.migrate(engine)
    if result.changed:
        _audit(engine, "db.migrate", actor, result)
    return result


def check(engine: Engine) -> str:
    """The current revision, or :class:`DatabaseError` naming what is wrong."""
    return schema.check(engine)


def reset(engine: Engine, *, actor: str) -> MigrationResult:
    """Drop everything and migrate again. The audit log starts over with this one row."""
    result = schema.reset(engine)
    _audit(engine, "db.reset", actor, result)
    return result


def rotate_fernet_key(
    factory: sessionmaker[Session], fernet: MultiFernet, *, actor: str
) -> tuple[int, int]:
    """Re-encrypt every secret with the first key; return (connections, variables) touched."""
    with transaction(factory) as session:
        conns = connection_store.reencrypt_all(session, fernet)
        variables = variable_store.reencrypt_all(session, fernet)
        audit.record(
            session,
            "db.rotate_fernet_key",
            owner=actor,
            extra={"connections": conns, "variables": variables},
        )
    return conns, variables
