"""Reading the audit log (who did what, and when) for the REST API and the UI.

Every service function that changes something writes its audit row itself, in the same
transaction as the change; this module only reads them back.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import InvalidInputError
from slipstream.service.dags import Page
from slipstream.store import audit
from slipstream.store.db import transaction
from slipstream.store.models import AuditLog


def list_entries(
    factory: sessionmaker[Session],
    *,
    dag_id: str | None = None,
    event: str | None = None,
    owner: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[AuditLog]:
    """One page of the entries, newest first, filtered by DAG, event name and user."""
    if limit < 1 or offset < 0:
        raise InvalidInputError("limit must be at least 1 and offset at least 0")
    with transaction(factory, readonly=True) as session:
        rows, total = audit.find_entries(
            session, event=event, dag_id=dag_id, owner=owner, limit=limit, offset=offset
        )
    return Page(rows, total)
