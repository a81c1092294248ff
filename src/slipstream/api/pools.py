"""Pools: list and get with their slot usage (read permission); create, change and
delete with manage_config. ``default_pool`` can be resized but never deleted."""

from __future__ import annotations

from typing import Any

from flask import Response

from slipstream.api.blueprint import registry
from slipstream.api.common import LIMIT, OFFSET
from slipstream.api.schemas import COMPONENTS, nullable, page_of, ref
from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.auth import require
from slipstream.security.context import services
from slipstream.service import pools as pool_service
from slipstream.service.updates import KEEP
from slipstream.store.pools import PoolUsage

_CONFIG = Permission.MANAGE_CONFIG
_SLOTS = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_DESCRIPTION = nullable("string", maxLength=10_000)

COMPONENTS["Pool"] = {
    "type": "object",
    "required": ["name", "slots", "occupied_slots", "running_slots", "queued_slots", "open_slots"],
    "properties": {
        "name": {"type": "string"},
        "slots": {"type": "integer"},
        "description": nullable("string"),
        "occupied_slots": {"type": "integer", "minimum": 0},
        "running_slots": {"type": "integer", "minimum": 0},
        "queued_slots": {"type": "integer", "minimum": 0},
        "open_slots": {
            "type": "integer",
            "description": "negative when a shrunk pool holds more than its slots",
        },
    },
}
COMPONENTS["PoolCollection"] = page_of("pools", "Pool")


def pool_json(pool: PoolUsage) -> dict[str, Any]:
    return {
        "name": pool.pool,
        "slots": pool.slots,
        "description": pool.description,
        "occupied_slots": pool.occupied,
        "running_slots": pool.running,
        "queued_slots": pool.queued,
        "open_slots": pool.open,
    }


@registry.route(
    "/pools",
    "GET",
    summary="List pools with their slot usage",
    tag="Pool",
    query=(LIMIT, OFFSET),
    response=ref("PoolCollection"),
)
def list_pools(query: dict[str, Any]) -> dict[str, Any]:
    pools = pool_service.list_pools(services().session_factory)
    shown = pools[query["offset"] : query["offset"] + query["limit"]]
    return {"pools": [pool_json(p) for p in shown], "total_entries": len(pools)}


@registry.route("/pools/{pool_name}", "GET", summary="Get a pool", tag="Pool", response=ref("Pool"))
def get_pool(pool_name: str) -> dict[str, Any]:
    return pool_json(pool_service.get_pool(services().session_factory, pool_name))


@registry.route(
    "/pools",
    "POST",
    summary="Create a pool",
    tag="Pool",
    permission=_CONFIG,
    body={
        "type": "object",
        "required": ["name", "slots"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^/]+$"},
            "slots": _SLOTS,
            "description": _DESCRIPTION,
        },
        "additionalProperties": False,
    },
    response=ref("Pool"),
    errors=(409,),
)
def create_pool(body: dict[str, Any]) -> dict[str, Any]:
    """409 when the name exists: change it with PATCH."""
    who = require(_CONFIG)
    pool = pool_service.create_pool(
        services().session_factory,
        body["name"],
        body["slots"],
        body.get("description"),
        actor=who.username,
    )
    return pool_json(pool)


@registry.route(
    "/pools/{pool_name}",
    "PATCH",
    summary="Change a pool's slots or description",
    tag="Pool",
    permission=_CONFIG,
    body={
        "type": "object",
        "minProperties": 1,
        "properties": {
            "name": {"type": "string", "description": "if given, the name in the URL"},
            "slots": _SLOTS,
            "description": _DESCRIPTION,
        },
        "additionalProperties": False,
    },
    response=ref("Pool"),
)
def patch_pool(pool_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Fields left out stay as they are; a null description clears it. A pool cannot be
    renamed: a ``name`` in the body must be the one in the URL."""
    who = require(_CONFIG)
    if body.get("name", pool_name) != pool_name:
        raise InvalidInputError("a pool cannot be renamed: create one with the new name")
    pool = pool_service.update_pool(
        services().session_factory,
        pool_name,
        slots=body.get("slots", KEEP),
        description=body.get("description", KEEP),
        actor=who.username,
    )
    return pool_json(pool)


@registry.route(
    "/pools/{pool_name}",
    "DELETE",
    summary="Delete a pool (not default_pool)",
    tag="Pool",
    permission=_CONFIG,
    status=204,
)
def delete_pool(pool_name: str) -> Response:
    """Tasks assigned to a deleted pool wait until a pool of that name exists again."""
    who = require(_CONFIG)
    pool_service.delete_pool(services().session_factory, pool_name, actor=who.username)
    return Response(status=204)
