"""Queries on connections, converting rows to and from the SDK's ``Connection``.

The password and the extra JSON are stored as Fernet tokens; nothing else is secret, so the
rest stays searchable in plain columns.
"""

from __future__ import annotations

from cryptography.fernet import MultiFernet
from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipstream.sdk.connection import Connection
from slipstream.store import crypto
from slipstream.store.models import Connection as ConnectionRow


def _to_sdk(fernet: MultiFernet, row: ConnectionRow) -> Connection:
    what = f"connection {row.conn_id!r}"
    return Connection(
        conn_id=row.conn_id,
        conn_type=row.conn_type,
        description=row.description,
        host=row.host,
        login=row.login,
        password=None if row.password is None else crypto.decrypt(fernet, row.password, what=what),
        schema=row.schema,
        port=row.port,
        extra=None if row.extra is None else crypto.decrypt(fernet, row.extra, what=what),
    )


def _fill_row(fernet: MultiFernet, row: ConnectionRow, conn: Connection) -> None:
    row.conn_type = conn.conn_type
    row.description = conn.description
    row.host = conn.host
    row.login = conn.login
    row.password = None if conn.password is None else crypto.encrypt(fernet, conn.password)
    row.schema = conn.schema
    row.port = conn.port
    row.extra = None if conn.extra is None else crypto.encrypt(fernet, conn.extra)


def get(session: Session, fernet: MultiFernet, conn_id: str) -> Connection | None:
    row = session.scalar(select(ConnectionRow).where(ConnectionRow.conn_id == conn_id))
    return None if row is None else _to_sdk(fernet, row)


def exists(session: Session, conn_id: str) -> bool:
    found = session.scalar(select(ConnectionRow.id).where(ConnectionRow.conn_id == conn_id))
    return found is not None


def list_all(session: Session, fernet: MultiFernet) -> list[Connection]:
    rows = session.scalars(select(ConnectionRow).order_by(ConnectionRow.conn_id))
    return [_to_sdk(fernet, row) for row in rows]


def add(session: Session, fernet: MultiFernet, conn: Connection) -> None:
    """Insert ``conn``; the caller checks that the id is free (the unique key enforces it)."""
    row = ConnectionRow(conn_id=conn.conn_id)
    _fill_row(fernet, row, conn)
    session.add(row)
    session.flush()


def delete(session: Session, conn_id: str) -> bool:
    """Delete ``conn_id``; True when it existed."""
    result = session.execute(sql_delete(ConnectionRow).where(ConnectionRow.conn_id == conn_id))
    return bool(getattr(result, "rowcount", 0))


def reencrypt_all(session: Session, fernet: MultiFernet) -> int:
    """Re-encrypt every password and extra with the newest key (after a key rotation)."""
    count = 0
    for row in session.scalars(select(ConnectionRow)):
        what = f"connection {row.conn_id!r}"
        if row.password is not None:
            row.password = crypto.rotate(fernet, row.password, what=what)
        if row.extra is not None:
            row.extra = crypto.rotate(fernet, row.extra, what=what)
        count += 1
    return count


def update(session: Session, fernet: MultiFernet, conn: Connection) -> bool:
    """Replace every field of the stored ``conn.conn_id`` with ``conn``'s; False when there
    is no such connection."""
    row = session.scalar(select(ConnectionRow).where(ConnectionRow.conn_id == conn.conn_id))
    if row is None:
        return False
    _fill_row(fernet, row, conn)
    return True
