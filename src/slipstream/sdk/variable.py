"""``Variable``: global key/value settings that tasks read at run time.

Lookup order, as in Airflow: the environment variable ``SLIPSTREAM_VAR_<KEY>`` (upper case),
then the metadata database through the runtime backend.
"""

from __future__ import annotations

import json
import os
from typing import Any

from slipstream.errors import VariableNotFound
from slipstream.masking import is_sensitive_key, mask_secret
from slipstream.sdk.runtime import get_backend

_MISSING: Any = object()


class Variable:
    @staticmethod
    def get(key: str, default_var: Any = _MISSING, deserialize_json: bool = False) -> Any:
        """The value of ``key``; ``default_var`` when it does not exist, else VariableNotFound."""
        value = os.environ.get(f"SLIPSTREAM_VAR_{key.upper()}")
        if value is None:
            backend = get_backend()
            value = backend.get_variable(key) if backend is not None else None
        if value is None:
            if default_var is not _MISSING:
                return default_var
            raise VariableNotFound(f"variable {key!r} does not exist")
        if is_sensitive_key(key):
            mask_secret(value)
        if deserialize_json:
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise VariableNotFound(f"variable {key!r} is not valid JSON: {exc}") from None
        return value

    @staticmethod
    def set(
        key: str, value: Any, description: str | None = None, serialize_json: bool = False
    ) -> None:
        backend = get_backend()
        if backend is None:
            raise VariableNotFound("no metadata database is available to store variables in")
        text = json.dumps(value) if serialize_json else str(value)
        backend.set_variable(key, text, description)
