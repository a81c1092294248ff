"""Connections: list, get, create, change, delete, with the manage_config permission.

The password is write-only: no answer carries it, only whether one is set
(``password_set``). Values under sensitive keys of ``extra`` (password, token, secret...)
are masked the same way; sending the mask back in a PATCH keeps the stored value.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from slipstream.api.blueprint import registry
from slipstream.api.common import LIMIT, OFFSET
from slipstream.api.schemas import COMPONENTS, nullable, page_of, ref
from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.sdk.connection import Connection
from slipstream.security.auth import require
from slipstream.security.context import services
from slipstream.service import connections as connection_service
from slipstream.service.updates import KEEP

_CONFIG = Permission.MANAGE_CONFIG

COMPONENTS["Connection"] = {
    "type": "object",
    "required": ["connection_id", "conn_type", "password_set"],
    "properties": {
        "connection_id": {"type": "string"},
        "conn_type": {"type": "string"},
        "description": nullable("string"),
        "host": nullable("string"),
        "login": nullable("string"),
        "schema": nullable("string"),
        "port": nullable("integer"),
        "extra": nullable("string", description="JSON object text; sensitive values masked"),
        "password_set": {"type": "boolean", "description": "the password is never returned"},
    },
}
COMPONENTS["ConnectionCollection"] = page_of("connections", "Connection")

#: the writable fields, with the columns' lengths
_FIELDS: dict[str, Any] = {
    "conn_type": {"type": "string", "minLength": 1, "maxLength": 500},
    "description": nullable("string", maxLength=10_000),
    "host": nullable("string", maxLength=500),
    "login": nullable("string", maxLength=10_000),
    "password": nullable("string", maxLength=10_000, description="write-only"),
    "schema": nullable("string", maxLength=500),
    "port": nullable("integer", minimum=1, maximum=65535),
    "extra": {
        "type": ["string", "object", "null"],
        "description": "a JSON object, or its text",
    },
}
CONN_ID = {"type": "string", "minLength": 1, "maxLength": 250, "pattern": "^[^/]+$"}


def connection_json(conn: Connection) -> dict[str, Any]:
    return {
        "connection_id": conn.conn_id,
        "conn_type": conn.conn_type,
        "description": conn.description,
        "host": conn.host,
        "login": conn.login,
        "schema": conn.schema,
        "port": conn.port,
        "extra": connection_service.redacted_extra(conn),
        "password_set": bool(conn.password),
    }


def _extra_text(value: Any) -> str | None:
    return json.dumps(value) if isinstance(value, dict) else value


@registry.route(
    "/connections",
    "GET",
    summary="List connections, by id",
    tag="Connection",
    permission=_CONFIG,
    query=(LIMIT, OFFSET),
    response=ref("ConnectionCollection"),
)
def list_connections(query: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    conns = connection_service.list_connections(svc.session_factory, svc.fernet)
    shown = conns[query["offset"] : query["offset"] + query["limit"]]
    return {"connections": [connection_json(c) for c in shown], "total_entries": len(conns)}


@registry.route(
    "/connections/{connection_id}",
    "GET",
    summary="Get a connection (never its password)",
    tag="Connection",
    permission=_CONFIG,
    response=ref("Connection"),
)
def get_connection(connection_id: str) -> dict[str, Any]:
    svc = services()
    conn = connection_service.get_connection(svc.session_factory, svc.fernet, connection_id)
    return connection_json(conn)


@registry.route(
    "/connections",
    "POST",
    summary="Create a connection",
    tag="Connection",
    permission=_CONFIG,
    body={
        "type": "object",
        "required": ["connection_id", "conn_type"],
        "properties": {"connection_id": CONN_ID, **_FIELDS},
        "additionalProperties": False,
    },
    response=ref("Connection"),
    errors=(409,),
)
def create_connection(body: dict[str, Any]) -> dict[str, Any]:
    """409 when the id exists: change it with PATCH."""
    who = require(_CONFIG)
    svc = services()
    conn = connection_service.build_connection(
        body["connection_id"],
        conn_type=body["conn_type"],
        description=body.get("description"),
        host=body.get("host"),
        login=body.get("login"),
        password=body.get("password"),
        schema=body.get("schema"),
        port=body.get("port"),
        extra=_extra_text(body.get("extra")),
    )
    connection_service.add_connection(svc.session_factory, svc.fernet, conn, actor=who.username)
    return connection_json(conn)


@registry.route(
    "/connections/{connection_id}",
    "PATCH",
    summary="Change some fields of a connection",
    tag="Connection",
    permission=_CONFIG,
    body={
        "type": "object",
        "minProperties": 1,
        "properties": {
            "connection_id": {"type": "string", "description": "if given, the id in the URL"},
            **_FIELDS,
        },
        "additionalProperties": False,
    },
    response=ref("Connection"),
)
def patch_connection(connection_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Fields left out stay as they are (the password above all); null clears a field.
    A connection cannot be renamed: a ``connection_id`` in the body must be the URL's."""
    who = require(_CONFIG)
    svc = services()
    if body.get("connection_id", connection_id) != connection_id:
        raise InvalidInputError("a connection cannot be renamed: create one with the new id")
    conn = connection_service.patch_connection(
        svc.session_factory,
        svc.fernet,
        connection_id,
        actor=who.username,
        conn_type=body.get("conn_type", KEEP),
        description=body.get("description", KEEP),
        host=body.get("host", KEEP),
        login=body.get("login", KEEP),
        password=body.get("password", KEEP),
        schema=body.get("schema", KEEP),
        port=body.get("port", KEEP),
        extra=_extra_text(body["extra"]) if "extra" in body else KEEP,
    )
    return connection_json(conn)


@registry.route(
    "/connections/{connection_id}",
    "DELETE",
    summary="Delete a connection",
    tag="Connection",
    permission=_CONFIG,
    status=204,
)
def delete_connection(connection_id: str) -> Response:
    who = require(_CONFIG)
    connection_service.delete_connection(
        services().session_factory, connection_id, actor=who.username
    )
    return Response(status=204)
