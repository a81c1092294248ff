"""The metadata database as the runtime backend of ``Variable`` and ``Connection``.

The worker installs a :class:`DatabaseBackend` with ``slipstream.sdk.runtime.set_backend``;
task code then reads variables and connections without knowing where they live. Each call
is its own short transaction, so a long task never holds a database transaction open.
"""

from __future__ import annotations

from cryptography.fernet import MultiFernet
from sqlalchemy.orm import Session, sessionmaker

from slipstream.sdk.connection import Connection
from slipstream.store import connections, variables
from slipstream.store.db import transaction


class DatabaseBackend:
    """Implements :class:`slipstream.sdk.runtime.RuntimeBackend`."""

    def __init__(self, session_factory: sessionmaker[Session], fernet: MultiFernet) -> None:
        self._factory = session_factory
        self._fernet = fernet

    def get_variable(self, key: str) -> str | None:
        with transaction(self._factory) as session:
            record = variables.get(session, self._fernet, key)
        return None if record is None else record.value

    def set_variable(self, key: str, value: str, description: str | None = None) -> None:
        with transaction(self._factory) as session:
            variables.upsert(session, self._fernet, key, value, description)

    def get_connection(self, conn_id: str) -> Connection | None:
        with transaction(self._factory) as session:
            return connections.get(session, self._fernet, conn_id)
