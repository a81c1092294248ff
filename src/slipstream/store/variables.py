"""Queries on variables. Every value is stored as a Fernet token (``is_encrypted``), as
Airflow does: a variable may hold a secret even when its key does not say so."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.fernet import MultiFernet
from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipstream.store import crypto
from slipstream.store.models import Variable


@dataclass(frozen=True)
class VariableRecord:
    """A variable with its value decrypted."""

    key: str
    value: str
    description: str | None


def _to_record(fernet: MultiFernet, row: Variable) -> VariableRecord:
    value = (
        crypto.decrypt(fernet, row.val, what=f"variable {row.key!r}")
        if row.is_encrypted
        else row.val
    )
    return VariableRecord(key=row.key, value=value, description=row.description)


def get(session: Session, fernet: MultiFernet, key: str) -> VariableRecord | None:
    row = session.scalar(select(Variable).where(Variable.key == key))
    return None if row is None else _to_record(fernet, row)


def list_all(session: Session, fernet: MultiFernet) -> list[VariableRecord]:
    rows = session.scalars(select(Variable).order_by(Variable.key))
    return [_to_record(fernet, row) for row in rows]


def upsert(
    session: Session, fernet: MultiFernet, key: str, value: str, description: str | None = None
) -> bool:
    """Create or replace ``key``; a None description keeps the existing one. True if created."""
    token = crypto.encrypt(fernet, value).decode("ascii")
    row = session.scalar(select(Variable).where(Variable.key == key))
    if row is None:
        session.add(Variable(key=key, val=token, description=description, is_encrypted=True))
        # flush now so a duplicate key in the same transaction updates instead of inserting twice
        session.flush()
        return True
    row.val = token
    row.is_encrypted = True
    if description is not None:
        row.description = description
    return False


def delete(session: Session, key: str) -> bool:
    """Delete ``key``; True when it existed."""
    result = session.execute(sql_delete(Variable).where(Variable.key == key))
    return bool(getattr(result, "rowcount", 0))


def reencrypt_all(session: Session, fernet: MultiFernet) -> int:
    """Re-encrypt every value with the newest key (after a key rotation)."""
    count = 0
    for row in session.scalars(select(Variable)):
        if row.is_encrypted:
            row.val = crypto.rotate(fernet, row.val, what=f"variable {row.key!r}").decode("ascii")
        else:
            row.val = crypto.encrypt(fernet, row.val).decode("ascii")
            row.is_encrypted = True
        count += 1
    return count


def update(
    session: Session, fernet: MultiFernet, key: str, value: str, description: str | None
) -> bool:
    """Replace the value and the description (None clears it) of ``key``; False when there
    is no such variable."""
    row = session.scalar(select(Variable).where(Variable.key == key))
    if row is None:
        return False
    row.val = crypto.encrypt(fernet, value).decode("ascii")
    row.is_encrypted = True
    row.description = description
    return True
