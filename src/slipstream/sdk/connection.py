"""``Connection``: how to reach an external system, with its credentials.

Lookup order, as in Airflow: ``SLIPSTREAM_CONN_<CONN_ID>`` (a URI or JSON) in the environment,
then the metadata database through the runtime backend. A connection's password and any
sensitive extra are registered with the masker as soon as it is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from slipstream.errors import ConnectionNotFound, InvalidInputError
from slipstream.masking import mask_secret
from slipstream.sdk.runtime import get_backend

_JSON_FIELDS = frozenset(
    {"conn_type", "description", "host", "login", "password", "schema", "port", "extra"}
)


@dataclass
class Connection:
    conn_id: str
    conn_type: str = ""
    description: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    port: int | None = None
    extra: str | None = None
    _extra_cache: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The extras as a dict ({} when empty or not JSON)."""
        if not self.extra:
            return {}
        try:
            value = json.loads(self.extra)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def get_uri(self) -> str:
        """The connection as a URI: ``type://login:password@host:port/schema?extras``."""
        scheme = self.conn_type.replace("_", "-") if self.conn_type else "generic"
        auth = ""
        if self.login is not None or self.password is not None:
            auth = quote(self.login or "", safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = quote(self.host or "", safe="")
        port = f":{self.port}" if self.port else ""
        schema = f"/{quote(self.schema, safe='')}" if self.schema else ""
        query = f"?{urlencode(self.extra_dejson)}" if self.extra_dejson else ""
        return f"{scheme}://{auth}{host}{port}{schema}{query}"

    @classmethod
    def from_uri(cls, conn_id: str, uri: str) -> Connection:
        """Parse a connection URI (the inverse of :meth:`get_uri`)."""
        parts = urlsplit(uri)
        if not parts.scheme:
            raise InvalidInputError(f"connection URI for {conn_id!r} has no scheme: {uri!r}")
        try:
            port = parts.port
        except ValueError:
            raise InvalidInputError(f"connection URI for {conn_id!r} has a bad port") from None
        extras = dict(parse_qsl(parts.query, keep_blank_values=True))
        return cls(
            conn_id=conn_id,
            conn_type=parts.scheme.replace("-", "_"),
            host=unquote(parts.hostname) if parts.hostname else None,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            schema=unquote(parts.path.lstrip("/")) or None,
            port=port,
            extra=json.dumps(extras) if extras else None,
        )

    @classmethod
    def from_json(cls, conn_id: str, text: str, source: str = "the connection JSON") -> Connection:
        """Parse Airflow's JSON form: ``{"conn_type": ..., "host": ..., "extra": {...}}``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"{source} must be a JSON object")
        unknown = sorted(set(data) - _JSON_FIELDS)
        if unknown:
            raise InvalidInputError(f"{source} has unknown fields: {', '.join(unknown)}")
        port = data.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise InvalidInputError(f"{source}: port must be an integer, not {port!r}")
        extra = data.get("extra")
        return cls(
            conn_id=conn_id,
            conn_type=data.get("conn_type", ""),
            description=data.get("description"),
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            schema=data.get("schema"),
            port=port,
            extra=json.dumps(extra) if isinstance(extra, dict) else extra,
        )

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        """Look a connection up by id; raise :class:`ConnectionNotFound` when it does not exist."""
        conn = _from_env(conn_id)
        if conn is None:
            backend = get_backend()
            conn = backend.get_connection(conn_id) if backend is not None else None
        if conn is None:
            raise ConnectionNotFound(f"connection {conn_id!r} does not exist")
        if conn.password:
            mask_secret(conn.password)
        mask_secret(conn.extra_dejson, name="extra")
        return conn

    # Airflow spells it this way in hooks.
    get_connection_from_secrets = get


def _from_env(conn_id: str) -> Connection | None:
    raw = os.environ.get(f"SLIPSTREAM_CONN_{conn_id.upper()}")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.startswith("{"):
        return Connection.from_json(conn_id, raw, source=f"SLIPSTREAM_CONN_{conn_id.upper()}")
    return Connection.from_uri(conn_id, raw)
