"""``Param``: a DAG or task parameter with a default, a description and a JSON-schema check.

Run configuration (``--conf``) overrides param defaults; every param is validated against
its schema before the run's first task starts, with one sentence naming the param.
"""

from __future__ import annotations

import copy
import json
from collections.abc import ItemsView, Iterator, KeysView, Mapping, MutableMapping
from typing import Any

import jsonschema

from slipstream.errors import InvalidInputError

_NOTSET: Any = type("NOTSET", (), {"__repr__": lambda self: "NOTSET"})()


class Param:
    """A value with a JSON-schema: ``Param(5, type="integer", minimum=1)``."""

    def __init__(
        self, default: Any = _NOTSET, description: str | None = None, **schema: Any
    ) -> None:
        self.value = default
        self.description = description
        self.schema = schema
        if self.has_value:
            self._check_schema_itself()

    @property
    def has_value(self) -> bool:
        return self.value is not _NOTSET

    def _check_schema_itself(self) -> None:
        try:
            jsonschema.Draft202012Validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            raise InvalidInputError(f"invalid param schema: {exc.message}") from None

    def resolve(self, value: Any = _NOTSET, name: str = "param") -> Any:
        """Validate ``value`` (or the default) against the schema and return it."""
        final = self.value if value is _NOTSET else value
        if final is _NOTSET:
            raise InvalidInputError(f"param {name!r} has no value and no default")
        try:
            jsonschema.validate(final, self.schema, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError as exc:
            raise InvalidInputError(f"param {name!r} is invalid: {exc.message}") from None
        except jsonschema.SchemaError as exc:
            raise InvalidInputError(
                f"param {name!r} has an invalid schema: {exc.message}"
            ) from None
        return final

    def dump(self) -> dict[str, Any]:
        return {
            "default": None if self.value is _NOTSET else self.value,
            "has_default": self.has_value,
            "description": self.description,
            "schema": self.schema,
        }

    def __repr__(self) -> str:
        return f"Param({self.value!r}, schema={self.schema!r})"


class ParamsDict(MutableMapping[str, Any]):
    """The ``params`` of a DAG or task: plain values are wrapped in schema-less Params."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._params: dict[str, Param] = {}
        for key, value in (values or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, ParamsDict):
            value = value.dump_values()
        self._params[key] = value if isinstance(value, Param) else Param(value)

    def __getitem__(self, key: str) -> Any:
        return self._params[key].value

    def __delitem__(self, key: str) -> None:
        del self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def keys(self) -> KeysView[str]:
        return self._params.keys()

    def items(self) -> ItemsView[str, Any]:
        return {k: p.value for k, p in self._params.items()}.items()

    def get_param(self, key: str) -> Param:
        return self._params[key]

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        if isinstance(other, ParamsDict):
            for key in other:
                incoming = copy.copy(other.get_param(key))
                existing = self._params.get(key)
                # A plain value over a Param with a schema overrides the default only: the
                # schema still applies, as in Airflow.
                if existing is not None and not incoming.schema and existing.schema:
                    merged = copy.copy(existing)
                    merged.value = incoming.value
                    incoming = merged
                self._params[key] = incoming
        else:
            super().update(other, **kwargs)

    def dump_values(self) -> dict[str, Any]:
        return {k: p.value for k, p in self._params.items()}

    def serialize(self) -> dict[str, Any]:
        return {k: p.dump() for k, p in self._params.items()}

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The final values for a run: defaults, overridden by ``overrides``, all validated."""
        overrides = overrides or {}
        values = {k: p.resolve(overrides.get(k, _NOTSET), k) for k, p in self._params.items()}
        for key, value in overrides.items():
            if key not in values:
                values[key] = value
        try:
            json.dumps(values)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"params must be JSON-serializable: {exc}") from None
        return values


class DagParamRef(str):
    """Stands for an argument of a ``@dag`` function: at run time, the param of that name.

    As a string it renders as ``{{ params.NAME }}``, so it also works inside templated text.
    """

    param_name: str

    def __new__(cls, name: str) -> DagParamRef:
        obj = super().__new__(cls, "{{ params." + name + " }}")
        obj.param_name = name
        return obj
