"""Variables: list, get, create, change, delete. Values may be secrets, so even reading
them needs the manage_config permission (Op and Admin), as changing them does."""

from __future__ import annotations

from typing import Any

from flask import Response

from slipstream.api.blueprint import registry
from slipstream.api.common import LIMIT, OFFSET
from slipstream.api.schemas import COMPONENTS, nullable, page_of, ref
from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.auth import require
from slipstream.security.context import services
from slipstream.service import variables as variable_service
from slipstream.service.updates import KEEP
from slipstream.store.variables import VariableRecord

_CONFIG = Permission.MANAGE_CONFIG
#: within the column's length, and one URL segment so it can be addressed afterwards
KEY = {"type": "string", "minLength": 1, "maxLength": 250, "pattern": "^[^/]+$"}
_DESCRIPTION = nullable("string", maxLength=10_000)

COMPONENTS["Variable"] = {
    "type": "object",
    "required": ["key", "value", "description"],
    "properties": {
        "key": {"type": "string"},
        "value": {"type": "string"},
        "description": nullable("string"),
    },
}
COMPONENTS["VariableCollection"] = page_of("variables", "Variable")


def variable_json(record: VariableRecord) -> dict[str, Any]:
    return {"key": record.key, "value": record.value, "description": record.description}


@registry.route(
    "/variables",
    "GET",
    summary="List variables, by key",
    tag="Variable",
    permission=_CONFIG,
    query=(LIMIT, OFFSET),
    response=ref("VariableCollection"),
)
def list_variables(query: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    records = variable_service.list_variables(svc.session_factory, svc.fernet)
    shown = records[query["offset"] : query["offset"] + query["limit"]]
    return {"variables": [variable_json(r) for r in shown], "total_entries": len(records)}


@registry.route(
    "/variables/{variable_key}",
    "GET",
    summary="Get a variable",
    tag="Variable",
    permission=_CONFIG,
    response=ref("Variable"),
)
def get_variable(variable_key: str) -> dict[str, Any]:
    svc = services()
    return variable_json(
        variable_service.get_variable(svc.session_factory, svc.fernet, variable_key)
    )


@registry.route(
    "/variables",
    "POST",
    summary="Create a variable",
    tag="Variable",
    permission=_CONFIG,
    body={
        "type": "object",
        "required": ["key", "value"],
        "properties": {"key": KEY, "value": {"type": "string"}, "description": _DESCRIPTION},
        "additionalProperties": False,
    },
    response=ref("Variable"),
    errors=(409,),
)
def create_variable(body: dict[str, Any]) -> dict[str, Any]:
    """409 when the key exists: change it with PATCH."""
    who = require(_CONFIG)
    svc = services()
    record = variable_service.create_variable(
        svc.session_factory,
        svc.fernet,
        body["key"],
        body["value"],
        description=body.get("description"),
        actor=who.username,
    )
    return variable_json(record)


@registry.route(
    "/variables/{variable_key}",
    "PATCH",
    summary="Change a variable's value or description",
    tag="Variable",
    permission=_CONFIG,
    body={
        "type": "object",
        "minProperties": 1,
        "properties": {
            "key": {"type": "string", "description": "if given, the key in the URL"},
            "value": {"type": "string"},
            "description": _DESCRIPTION,
        },
        "additionalProperties": False,
    },
    response=ref("Variable"),
)
def patch_variable(variable_key: str, body: dict[str, Any]) -> dict[str, Any]:
    """Fields left out stay as they are; a null description clears it. A variable cannot
    be renamed: a ``key`` in the body must be the one in the URL."""
    who = require(_CONFIG)
    svc = services()
    if body.get("key", variable_key) != variable_key:
        raise InvalidInputError("a variable cannot be renamed: create one with the new key")
    record = variable_service.update_variable(
        svc.session_factory,
        svc.fernet,
        variable_key,
        value=body.get("value", KEEP),
        description=body.get("description", KEEP),
        actor=who.username,
    )
    return variable_json(record)


@registry.route(
    "/variables/{variable_key}",
    "DELETE",
    summary="Delete a variable",
    tag="Variable",
    permission=_CONFIG,
    status=204,
)
def delete_variable(variable_key: str) -> Response:
    who = require(_CONFIG)
    variable_service.delete_variable(services().session_factory, variable_key, actor=who.username)
    return Response(status=204)
