"""Is slipstream up: the database and the newest heartbeat of each kind of component."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import DatabaseError
from slipstream.store import jobs
from slipstream.store.db import transaction


@dataclass(frozen=True)
class ComponentHealth:
    healthy: bool
    latest_heartbeat: datetime


@dataclass(frozen=True)
class Health:
    database_ok: bool
    #: by job type (scheduler, worker, dag_processor); a type never started is absent
    components: dict[str, ComponentHealth]

    @property
    def healthy(self) -> bool:
        return self.database_ok and all(c.healthy for c in self.components.values())


def check_health(factory: sessionmaker[Session], *, now: datetime, timeout: float) -> Health:
    """A component counts as healthy when its newest heartbeat is younger than ``timeout``."""
    try:
        with transaction(factory, readonly=True) as session:
            session.execute(text("SELECT 1"))
            beats = jobs.latest_heartbeats(session)
    except (SQLAlchemyError, DatabaseError):
        return Health(database_ok=False, components={})
    return Health(
        database_ok=True,
        components={
            kind: ComponentHealth((now - beat).total_seconds() < timeout, beat)
            for kind, beat in beats.items()
        },
    )
