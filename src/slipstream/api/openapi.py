"""The OpenAPI 3.1 document, built from the registry's declarations."""

from __future__ import annotations

from typing import Any

from slipstream.api.registry import Operation
from slipstream.api.schemas import COMPONENTS

#: an id in a path: one URL segment, so never empty and never holding a slash
PATH_STRING = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}

_STATUS_TEXT = {
    400: "Bad request: the message says what is wrong",
    401: "Not authenticated",
    403: "Authenticated, but the role does not allow this",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
}


def build_document(operations: list[Operation], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "slipstream REST API",
            "version": version,
            "description": (
                "Operate slipstream: DAGs, runs, task instances, logs, XComs, variables, "
                "connections, pools. Authenticate with HTTP Basic or with a bearer token "
                "from POST /auth/token."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"basic": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.endpoint,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        out["description"] = op.description
    if op.permission is None:
        out["security"] = []
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict(op.path_schemas.get(name, PATH_STRING)),
        }
        for name in op.path_params
    ]
    for q in op.query:
        param: dict[str, Any] = {
            "name": q.name,
            "in": "query",
            "required": q.required,
            "schema": dict(q.schema),
        }
        if q.description:
            param["description"] = q.description
        if q.schema.get("type") == "array":
            param["style"] = "form"
            param["explode"] = True
        params.append(param)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": dict(op.body)}},
        }
    success: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        success["content"] = {op.content_type: {"schema": dict(op.response)}}
    responses: dict[str, Any] = {str(op.status): success}
    for status in op.errors:
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    out["responses"] = responses
    return out
