"""Declared endpoints: each one registers its Flask route and its OpenAPI operation from the
same declaration, so the document at /api/v1/openapi.json describes what the server does.

The wrapper around every endpoint does the checks the declaration promises, in order: the
caller's permission, the typed path parameters, the query parameters (types, bounds,
enums, date-times), the JSON body (against its JSON schema). Text no database can store
(NUL characters, lone surrogates) and absurdly nested bodies are refused first. The
endpoint function gets clean values and returns plain data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonschema
from flask import Blueprint, Response, jsonify, request

from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.auth import require

_PATH_PARAM = re.compile(r"{(\w+)}")
_INTEGER = re.compile(r"-?[0-9]{1,30}")


@dataclass(frozen=True)
class Query:
    """A query parameter: its JSON schema (type integer, boolean, string — a date-time
    when its format says so — or an array of strings given as repeated or comma-separated
    values)."""

    name: str
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False
    #: "query", or "path" for a typed path parameter (the messages name it so)
    location: str = "query"


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
    #: JSON schemas of path parameters that are not plain strings (e.g. an integer)
    path_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


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
        path_schemas: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        path_params = tuple(_PATH_PARAM.findall(path))
        standard: tuple[int, ...] = (400,) if (query or body is not None or path_params) else ()
        if body is not None:
            standard += (413,)
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
                path_schemas=dict(path_schemas or {}),
            )
            self.operations.append(op)
            validator = jsonschema.Draft202012Validator(body) if body is not None else None

            def view(**path_args: str) -> Response | tuple[Response, int]:
                if op.permission is not None:
                    require(op.permission)
                _check_text(path_args, "the URL")
                kwargs: dict[str, Any] = {
                    name: _coerce(Query(name, op.path_schemas[name], location="path"), [value])
                    if name in op.path_schemas
                    else value
                    for name, value in path_args.items()
                }
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


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_body(validator: jsonschema.Draft202012Validator) -> Any:
    if request.mimetype != "application/json":
        raise InvalidInputError("send the request body as JSON (Content-Type: application/json)")
    try:
        # NaN and Infinity are not JSON, and no database column takes them back
        data = json.loads(request.get_data(cache=True), parse_constant=_no_constants)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested absurdly deep
        raise InvalidInputError("the request body is not valid JSON") from None
    _check_text(data, "the request body")
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)[:100]
        # the message quotes the offending value, which may be as long as the body
        message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
        raise InvalidInputError(f"invalid request body{' at ' + where if where else ''}: {message}")
    return data


#: deeper request bodies are refused: nothing the API takes needs more, and the JSON and
#: schema code downstream recurses once per level
MAX_DEPTH = 64


def _check_text(data: Any, where: str) -> None:
    """Refuse what no database stores or no code should walk: text with NUL characters
    (PostgreSQL refuses them) or lone surrogates (not encodable as UTF-8), and nesting
    deeper than :data:`MAX_DEPTH`. Walks the data without recursion."""
    stack = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInputError(f"{where} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise InvalidInputError(f"text in {where} cannot hold NUL characters")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInputError(
                    f"text in {where} is not valid Unicode (it holds a lone surrogate)"
                ) from None


def _parse_query(params: tuple[Query, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in params:
        raw = request.args.getlist(param.name)
        _check_text(raw, f"query parameter {param.name!r}")
        if not raw:
            if param.required:
                raise InvalidInputError(f"{param.location} parameter {param.name!r} is required")
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
                    f"{param.location} parameter {param.name!r}: {item[:40]!r} is not one of "
                    f"{', '.join(allowed)}"
                )
        return items
    value = raw[-1]
    if kind == "integer":
        # plain digits only: int() would also take "1_000", " 7 " and 5000-digit numbers
        if not _INTEGER.fullmatch(value):
            raise InvalidInputError(
                f"{param.location} parameter {param.name!r} must be an integer, not {value[:40]!r}"
            )
        number = int(value)
        if "minimum" in schema and number < schema["minimum"]:
            raise InvalidInputError(
                f"{param.location} parameter {param.name!r} must be at least {schema['minimum']}"
            )
        if "maximum" in schema and number > schema["maximum"]:
            raise InvalidInputError(
                f"{param.location} parameter {param.name!r} must be at most {schema['maximum']}"
            )
        return number
    if kind == "boolean":
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise InvalidInputError(f"{param.location} parameter {param.name!r} must be true or false")
    if schema.get("format") == "date-time":
        return _datetime(param, value)
    allowed = schema.get("enum")
    if allowed is not None and value not in allowed:
        raise InvalidInputError(
            f"{param.location} parameter {param.name!r} must be one of {', '.join(allowed)}"
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise InvalidInputError(f"{param.location} parameter {param.name!r} is too long")
    return value


def _datetime(param: Query, value: str) -> datetime:
    """An ISO 8601 date-time; one without a time zone is read as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # not a date-time, or out of range once in UTC
        raise InvalidInputError(
            f"{param.location} parameter {param.name!r} must be an ISO 8601 date-time "
            f"(e.g. 2024-01-31T06:00:00+00:00), not {value[:40]!r}"
        ) from None
