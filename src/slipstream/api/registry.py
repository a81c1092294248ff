"""Declared endpoints: each one registers its Flask route and its OpenAPI operation from the
same declaration, so the document at /api/v1/openapi.json describes what the server does.

The wrapper around every endpoint does the checks the declaration promises, in order: the
caller's permission, the query parameters (types, bounds, enums), the JSON body (against
its JSON schema). The endpoint function gets clean values and returns plain data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from flask import Blueprint, Response, jsonify, request

from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.auth import require

_PATH_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Query:
    """A query parameter: its JSON schema (type integer, boolean, string, or an array of
    strings given as repeated or comma-separated values)."""

    name: str
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    endpoint: str
    summary: str
    tag: str
    permission: Permission | None
    query: tuple[Query, ...]
    body: Mapping[str, Any] | None
    response: Mapping[str, Any] | None
    status: int
    #: statuses besides the success one this operation can answer with
    errors: tuple[int, ...]
    description: str = ""
    path_params: tuple[str, ...] = field(default=())
    #: the success response is not JSON (e.g. text/plain logs)
    content_type: str = "application/json"


class ApiRegistry:
    def __init__(self, blueprint: Blueprint) -> None:
        self.blueprint = blueprint
        self.operations: list[Operation] = []

    def route(
        self,
        path: str,
        method: str,
        *,
        summary: str,
        tag: str,
        permission: Permission | None = Permission.READ,
        query: tuple[Query, ...] = (),
        body: Mapping[str, Any] | None = None,
        response: Mapping[str, Any] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        description: str = "",
        content_type: str = "application/json",
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        path_params = tuple(_PATH_PARAM.findall(path))
        standard = (400,) if (query or body is not None or path_params) else ()
        auth = (401, 403) if permission is not None else ()
        found = (404,) if path_params else ()

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            op = Operation(
                path=path,
                method=method.upper(),
                endpoint=fn.__name__,
                summary=summary,
                tag=tag,
                permission=permission,
                query=query,
                body=body,
                response=response,
                status=status,
                errors=tuple(sorted(set(standard + auth + found + errors))),
                description=description or (fn.__doc__ or "").strip(),
                path_params=path_params,
                content_type=content_type,
            )
            self.operations.append(op)
            validator = jsonschema.Draft202012Validator(body) if body is not None else None

            def view(**path_args: str) -> Response | tuple[Response, int]:
                if op.permission is not None:
                    require(op.permission)
                kwargs: dict[str, Any] = dict(path_args)
                if op.query:
                    kwargs["query"] = _parse_query(op.query)
                if validator is not None:
                    kwargs["body"] = _parse_body(validator)
                result = fn(**kwargs)
                if isinstance(result, Response):
                    return result
                return jsonify(result), op.status

            rule = _PATH_PARAM.sub(r"<\1>", path)
            self.blueprint.add_url_rule(
                rule, endpoint=fn.__name__, view_func=view, methods=[op.method]
            )
            return fn

        return decorate


def _parse_body(validator: jsonschema.Draft202012Validator) -> Any:
    data = request.get_json(silent=True)
    if data is None:
        if not request.mimetype or request.mimetype != "application/json":
            raise InvalidInputError(
                "send the request body as JSON (Content-Type: application/json)"
            )
        raise InvalidInputError("the request body is not valid JSON")
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise InvalidInputError(
            f"invalid request body{' at ' + where if where else ''}: {error.message}"
        )
    return data


def _parse_query(params: tuple[Query, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in params:
        raw = request.args.getlist(param.name)
        if not raw:
            if param.required:
                raise InvalidInputError(f"query parameter {param.name!r} is required")
            values[param.name] = param.schema.get("default")
            continue
        values[param.name] = _coerce(param, raw)
    return values


def _coerce(param: Query, raw: list[str]) -> Any:
    schema = param.schema
    kind = schema.get("type")
    if kind == "array":
        items = [part for value in raw for part in value.split(",") if part != ""]
        allowed = schema.get("items", {}).get("enum")
        for item in items:
            if allowed is not None and item not in allowed:
                raise InvalidInputError(
                    f"query parameter {param.name!r}: {item!r} is not one of {', '.join(allowed)}"
                )
        return items
    value = raw[-1]
    if kind == "integer":
        try:
            number = int(value)
        except ValueError:
            raise InvalidInputError(
                f"query parameter {param.name!r} must be an integer, not {value[:40]!r}"
            ) from None
        if "minimum" in schema and number < schema["minimum"]:
            raise InvalidInputError(
                f"query parameter {param.name!r} must be at least {schema['minimum']}"
            )
        if "maximum" in schema and number > schema["maximum"]:
            raise InvalidInputError(
                f"query parameter {param.name!r} must be at most {schema['maximum']}"
            )
        return number
    if kind == "boolean":
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise InvalidInputError(f"query parameter {param.name!r} must be true or false")
    allowed = schema.get("enum")
    if allowed is not None and value not in allowed:
        raise InvalidInputError(
            f"query parameter {param.name!r} must be one of {', '.join(allowed)}"
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise InvalidInputError(f"query parameter {param.name!r} is too long")
    return value
