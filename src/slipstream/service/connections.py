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
from slipstream.masking import MASK, is_sensitive_key, redact_value
from slipstream.sdk.connection import Connection
from slipstream.service.updates import KEEP, Keep
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
    except RecursionError:
        raise InvalidInputError(
            f"the extra of connection {conn_id!r} is nested too deeply to be read"
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


_FIELDS = ("conn_type", "description", "host", "login", "password", "schema", "port", "extra")


def update_connection(
    factory: sessionmaker[Session],
    fernet: MultiFernet,
    conn: Connection,
    *,
    actor: str,
    keep_password: bool = False,
) -> Connection:
    """Replace every field of the existing connection ``conn.conn_id`` with ``conn``'s (an
    edit form's save). With ``keep_password`` the stored password stays, whatever ``conn``
    holds: a form never shows it, so an empty password field means "unchanged"."""
    changes: dict[str, Any] = {name: getattr(conn, name) for name in _FIELDS}
    if keep_password:
        changes["password"] = KEEP
    return _update(factory, fernet, conn.conn_id, changes, actor=actor)


def patch_connection(
    factory: sessionmaker[Session],
    fernet: MultiFernet,
    conn_id: str,
    *,
    actor: str,
    conn_type: str | Keep = KEEP,
    description: str | Keep | None = KEEP,
    host: str | Keep | None = KEEP,
    login: str | Keep | None = KEEP,
    password: str | Keep | None = KEEP,
    schema: str | Keep | None = KEEP,
    port: int | Keep | None = KEEP,
    extra: str | Keep | None = KEEP,
) -> Connection:
    """Change the given fields of an existing connection (a REST PATCH); what is KEEP
    stays, the password above all, and None clears a field."""
    changes = {
        "conn_type": conn_type,
        "description": description,
        "host": host,
        "login": login,
        "password": password,
        "schema": schema,
        "port": port,
        "extra": extra,
    }
    return _update(factory, fernet, conn_id, changes, actor=actor)


def _update(
    factory: sessionmaker[Session],
    fernet: MultiFernet,
    conn_id: str,
    changes: dict[str, Any],
    *,
    actor: str,
) -> Connection:
    """Apply ``changes`` (field -> new value or KEEP) to the stored connection, checked as a
    new one would be. In a new ``extra``, a sensitive key whose value is the mask (as every
    view shows it) keeps its stored value, so a masked view can be edited and sent back."""
    with transaction(factory) as session:
        current = store.get(session, fernet, conn_id)
        if current is None:
            raise ConnectionNotFound(f"connection {conn_id!r} does not exist")
        merged: dict[str, Any] = {
            name: getattr(current, name) if value is KEEP else value
            for name, value in changes.items()
        }
        if isinstance(changes["extra"], str) and changes["extra"]:
            merged["extra"] = _unmask_extra(conn_id, changes["extra"], current)
        conn = build_connection(conn_id, **merged)
        store.update(session, fernet, conn)
        changed = sorted(
            name
            for name, value in changes.items()
            if value is not KEEP and merged[name] != getattr(current, name)
        )
        # the names of the changed fields only: never their values
        audit.record(
            session,
            "connection.update",
            owner=actor,
            extra={"conn_id": conn_id, "fields": changed},
        )
    return conn


def _unmask_extra(conn_id: str, extra: str, current: Connection) -> str:
    new = json.loads(_normalise_extra(conn_id, extra))
    old = current.extra_dejson
    for key, value in new.items():
        if value == MASK and is_sensitive_key(str(key)) and key in old:
            new[key] = old[key]
    return json.dumps(new)


def redacted_extra(conn: Connection) -> str | None:
    """The extra JSON with the values under sensitive keys masked, for any view of the
    connection (None when it has none)."""
    if not conn.extra:
        return None
    try:
        return json.dumps(redact_value(json.loads(conn.extra)))
    except (json.JSONDecodeError, RecursionError):
        return MASK  # not JSON (or absurdly nested): no telling what in it is secret
