"""The rendered template fields of a try, made fit to store: masked, JSON-safe, size-capped.

The child renders a task's template fields and masks them (:func:`slipstream.masking.redact_value`);
what it sends back to its supervisor, and what ends up in ``task_instance.rendered_fields``
for the UI, is :func:`storable_rendered_fields` of that. A value JSON cannot hold becomes its
``repr`` (masked again: a repr can spell out a registered secret), and each field is capped
at :data:`MAX_FIELD_BYTES` of JSON text, so one huge rendered command cannot bloat the row or
the pipe.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from slipstream.masking import redact

#: the most JSON text (UTF-8 bytes) stored for one rendered field: 64 KiB
MAX_FIELD_BYTES = 64 * 1024
# Deeper than this is a pathological (or self-referencing) structure: shown as its repr.
_MAX_DEPTH = 32


def storable_rendered_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` (already masked) as JSON-safe values, each at most :data:`MAX_FIELD_BYTES`.

    A field over the cap becomes a string: the start of its text (the string itself, or
    its JSON for a structure) and a note saying how large it was.
    """
    return {str(name): _capped(_json_safe(value, 0)) for name, value in fields.items()}


def _json_safe(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return str(value)  # a str subclass (Jinja's Markup) as a plain str
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_json_safe(v, depth + 1) for v in value]
        if isinstance(value, set | frozenset):
            return sorted((_json_safe(v, depth + 1) for v in value), key=repr)
    return redact(_safe_repr(value))


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a user object whose __repr__ fails still gets a line
        return f"<{type(value).__name__} (its repr failed)>"


def _capped(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    size = len(text.encode("utf-8"))
    if size <= MAX_FIELD_BYTES:
        return value
    head = text.encode("utf-8")[:MAX_FIELD_BYTES].decode("utf-8", errors="ignore")
    return (
        f"{head}\n... (truncated: the rendered value is {size} bytes; "
        f"the first {MAX_FIELD_BYTES} are kept)"
    )
