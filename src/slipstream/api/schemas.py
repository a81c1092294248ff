"""JSON schemas of the API's bodies and responses (JSON Schema 2020-12, as OpenAPI 3.1)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def page_of(key: str, item: str) -> Schema:
    """A page of a list: the items under ``key`` and the count of all matches."""
    return {
        "type": "object",
        "required": [key, "total_entries"],
        "properties": {
            key: {"type": "array", "items": ref(item)},
            "total_entries": {"type": "integer", "minimum": 0},
        },
    }


DATETIME = nullable("string", format="date-time")

#: every schema referenced as #/components/schemas/<name>; endpoint modules add theirs
COMPONENTS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["title", "status", "detail"],
        "properties": {
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    },
}
