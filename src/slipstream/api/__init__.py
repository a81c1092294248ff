"""The versioned JSON REST API under /api/v1: its blueprint, its endpoints (one module per
resource) and the OpenAPI document that describes them."""

from __future__ import annotations

# each module declares its endpoints on the registry as it is imported
from slipstream.api import (  # noqa: F401
    connections,
    core,
    dags,
    monitoring,
    pools,
    runs,
    task_data,
    task_instances,
    variables,
)
from slipstream.api.blueprint import API_PREFIX, blueprint, registry

__all__ = ["API_PREFIX", "blueprint", "registry"]
