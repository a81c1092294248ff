"""Queries on ``import_error``: one row per DAG file that failed to import, with why.

The caller owns the transaction: these functions take a Session and never commit.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from slipstream.store.models import ImportError_


def upsert(
    session: Session, filename: str, message: str, stacktrace: str | None, when: datetime
) -> None:
    """Record the error of ``filename``, replacing the previous one.

    One INSERT ... ON CONFLICT statement, so two processors recording the same file at once
    (``dags test`` parses a file while ``dags reserialize`` runs) cannot collide.
    """
    values = {"filename": filename, "message": message, "stacktrace": stacktrace, "timestamp": when}
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ImportError_).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[ImportError_.filename],
            set_={k: statement.excluded[k] for k in ("message", "stacktrace", "timestamp")},
        )
    )


def clear(session: Session, filename: str) -> bool:
    """Forget the error of ``filename``; True if there was one."""
    result = session.execute(delete(ImportError_).where(ImportError_.filename == filename))
    return bool(getattr(result, "rowcount", 0))


def clear_all_except(session: Session, filenames: Collection[str]) -> int:
    """Forget the errors of files that are no longer DAG files (deleted or ignored)."""
    stale = [
        row.filename
        for row in session.scalars(select(ImportError_))
        if row.filename not in filenames
    ]
    for filename in stale:
        clear(session, filename)
    return len(stale)


def get(session: Session, filename: str) -> ImportError_ | None:
    return session.scalar(select(ImportError_).where(ImportError_.filename == filename))


def list_all(session: Session) -> list[ImportError_]:
    return list(session.scalars(select(ImportError_).order_by(ImportError_.filename)))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ImportError_)) or 0
