"""Queries on the audit log: who did what to which object, and when.

Rows are written in the same transaction as the change they describe, so a rolled-back change
leaves no audit row behind. Never put secrets in ``extra``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipstream.store.models import AuditLog


def record(
    session: Session,
    event: str,
    *,
    owner: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    extra: dict[str, Any] | str | None = None,
    when: datetime | None = None,
) -> AuditLog:
    """Add one audit row to the caller's transaction."""
    row = AuditLog(
        dttm=when or datetime.now(UTC),
        event=event,
        owner=owner,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        extra=json.dumps(extra, sort_keys=True, default=str) if isinstance(extra, dict) else extra,
    )
    session.add(row)
    return row


def list_entries(
    session: Session,
    *,
    event: str | None = None,
    dag_id: str | None = None,
    owner: str | None = None,
    limit: int = 100,
) -> list[AuditLog]:
    """The newest entries first, optionally filtered."""
    query = select(AuditLog).order_by(AuditLog.dttm.desc(), AuditLog.id.desc()).limit(limit)
    if event is not None:
        query = query.where(AuditLog.event == event)
    if dag_id is not None:
        query = query.where(AuditLog.dag_id == dag_id)
    if owner is not None:
        query = query.where(AuditLog.owner == owner)
    return list(session.scalars(query))


def find_entries(
    session: Session,
    *,
    event: str | None = None,
    dag_id: str | None = None,
    owner: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditLog], int]:
    """One page of the entries, newest first, and how many match the filters in all."""
    conditions = [
        column == value
        for column, value in (
            (AuditLog.event, event),
            (AuditLog.dag_id, dag_id),
            (AuditLog.owner, owner),
        )
        if value is not None
    ]
    total = session.scalar(select(func.count()).select_from(AuditLog).where(*conditions)) or 0
    query = (
        select(AuditLog)
        .where(*conditions)
        .order_by(AuditLog.dttm.desc(), AuditLog.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(query)), int(total)
