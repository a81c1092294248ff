"""The seam between authoring code and the running system.

Task code calls ``Variable.get`` or ``Connection.get`` without knowing where values live. The
process that runs tasks (the worker, ``dags test``) installs a :class:`RuntimeBackend` that
reads them from the metadata database; the SDK itself never imports the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from slipstream.sdk.connection import Connection


class RuntimeBackend(Protocol):
    def get_variable(self, key: str) -> str | None:
        """The stored value of variable ``key`` (decrypted), or None when it does not exist."""

    def set_variable(self, key: str, value: str, description: str | None = None) -> None:
        """Create or replace variable ``key``."""

    def get_connection(self, conn_id: str) -> Connection | None:
        """The connection ``conn_id`` with its secrets decrypted, or None."""


_backend: RuntimeBackend | None = None


def set_backend(backend: RuntimeBackend | None) -> None:
    global _backend
    _backend = backend


def get_backend() -> RuntimeBackend | None:
    return _backend
