"""Connection actions: add, get, list, delete, and the masked view shown to people.

A connection comes either from a URI (``--conn-uri``) or from separate fields, as in
Airflow's ``connections add``. Passwords and sensitive extras are masked in every view unless
the caller asks for secrets explicitly.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from cryptography.fernet import MultiFernet
from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import AlreadyExistsError, ConnectionNotFound, InvalidInputError
from slipstream.masking import MASK, redact_value
from slipstream.sdk.connection import Connection
from slipstream.store import audit
from slipstream.store import connections as store
from slipstream.store.db import transaction

MAX_ID_LENGTH = 250


def build_connection(
    conn_id: str,
    *,
    uri: str | None = None,
    conn_type: str | None = None,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    schema: str | None = None,
    port: int | None = None,
    extra: str | None = None,
    description: str | None = None,
    json_text: str | None = None,
) -> Connection:
    """Validate the user's input and make the ``Connection`` to store: from a URI, from
    Airflow's JSON form, or from separate fields."""
    if not conn_id.strip():
        raise InvalidInputError("a connection id cannot be empty")
    if len(conn_id) > MAX_ID_LENGTH:
        raise InvalidInputError(f"connection id is longer than {MAX_ID_LENGTH} characters")
    fields = {
        "conn_type": conn_type,
        "host": host,
        "login": login,
        "password": password,
        "schema": schema,
        "port": port,
        "extra": extra,
    }
    if uri is not None and json_text is not None:
        raise InvalidInputError("give either a connection URI or connection JSON, not both")
    if uri is not None or json_text is not None:
        given = sorted(name for name, value in fields.items() if value is not None)
        if given:
            raise InvalidInputError(
                "give either a connection URI or JSON, or separate fields, not both "
                f"(also got {', '.join(given)})"
            )
        if uri is not None:
            conn = Connection.from_uri(conn_id, uri)
        else:
            conn = Connection.from_json(conn_id, json_text or "", source="--conn-json")
            if not conn.conn_type:
                raise InvalidInputError(f"connection {conn_id!r} needs a conn_type in its JSON")
        conn.description = description or conn.description
        return conn
    if not conn_type:
        raise InvalidInputError(f"connection {conn_id!r} needs a URI or a connection type")
    if port is not None and not 0 < port < 65536:
        raise InvalidInputError(f"connection {conn_id!r} has a port out of range: {port}")
    if extra is not None:
        extra = _normalise_extra(conn_id, extra)
    return Connection(
        conn_id=conn_id,
        conn_type=conn_type,
        description=description,
        host=host,
        login=login,
        password=password,
        schema=schema,
        port=port,
        extra=extra,
    )


def _normalise_extra(conn_id: str, extra: str) -> str:
    try:
        value = json.loads(extra)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"the extra of connection {conn_id!r} is not valid JSON: {exc}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"the extra of connection {conn_id!r} must be a JSON object")
    return json.dumps(value)


def add_connection(
    factory: sessionmaker[Session], fernet: MultiFernet, conn: Connection, *, actor: str
) -> None:
    with transaction(factory) as session:
        if store.exists(session, conn.conn_id):
            raise AlreadyExistsError(f"connection {conn.conn_id!r} already exists")
        store.add(session, fernet, conn)
        audit.record(
            session,
            "connection.add",
            owner=actor,
            extra={"conn_id": conn.conn_id, "conn_type": conn.conn_type},
        )


def get_connection(factory: sessionmaker[Session], fernet: MultiFernet, conn_id: str) -> Connection:
    with transaction(factory) as session:
        conn = store.get(session, fernet, conn_id)
    if conn is None:
        raise ConnectionNotFound(f"connection {conn_id!r} does not exist")
    return conn


def list_connections(factory: sessionmaker[Session], fernet: MultiFernet) -> list[Connection]:
    with transaction(factory) as session:
        return store.list_all(session, fernet)


def delete_connection(factory: sessionmaker[Session], conn_id: str, *, actor: str) -> None:
    with transaction(factory) as session:
        if not store.delete(session, conn_id):
            raise ConnectionNotFound(f"connection {conn_id!r} does not exist")
        audit.record(session, "connection.delete", owner=actor, extra={"conn_id": conn_id})


def describe_connection(conn: Connection, *, show_secrets: bool = False) -> dict[str, Any]:
    """The connection as a flat dict for display; secrets masked unless ``show_secrets``."""
    extra: Any = conn.extra_dejson if conn.extra else None
    shown = conn
    if not show_secrets:
        if isinstance(extra, dict):
            extra = redact_value(extra)
        shown = dataclasses.replace(
            conn,
            password=MASK if conn.password else conn.password,
            extra=json.dumps(extra) if isinstance(extra, dict) else conn.extra,
        )
    uri = shown.get_uri()
    if not show_secrets:
        # get_uri percent-encodes the mask; show it as people expect to see it
        uri = uri.replace("%2A%2A%2A", MASK)
    return {
        "conn_id": conn.conn_id,
        "conn_type": conn.conn_type,
        "description": conn.description,
        "host": conn.host,
        "schema": conn.schema,
        "login": conn.login,
        "password": shown.password,
        "port": conn.port,
        "extra": extra if extra is not None else conn.extra,
        "uri": uri,
    }
