"""The versioned JSON REST API under /api/v1: its blueprint, its endpoints (one module per
resource) and the OpenAPI document that describes them."""

from __future__ import annotations

from slipstream.api import core, dags  # noqa: F401  (each module declares its endpoints)
from slipstream.api.blueprint import API_PREFIX, blueprint, registry

__all__ = ["API_PREFIX", "blueprint", "registry"]
