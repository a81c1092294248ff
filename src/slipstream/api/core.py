"""Health, the OpenAPI document, and API tokens."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import current_app, jsonify
from flask.wrappers import Response

from slipstream.api.blueprint import registry
from slipstream.api.openapi import build_document
from slipstream.roles import Permission
from slipstream.security.auth import issue_token, require
from slipstream.security.context import services
from slipstream.service.health import check_health


def _version() -> str:
    try:
        return version("slipstream")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


HEALTH = {
    "type": "object",
    "required": ["status", "metadatabase", "components"],
    "properties": {
        "status": {"type": "string", "enum": ["healthy", "unhealthy"]},
        "metadatabase": {"type": "object"},
        "components": {"type": "object"},
    },
}


@registry.route(
    "/health",
    "GET",
    summary="Health of the database and of the scheduler, workers and DAG processor",
    tag="Monitoring",
    permission=None,
    response=HEALTH,
)
def get_health() -> dict[str, Any]:
    """Readable without logging in, for load balancers and monitors: says only whether each
    part is up, nothing about DAGs or data."""
    svc = services()
    health = check_health(
        svc.session_factory, now=svc.now(), timeout=svc.config.scheduler.task_heartbeat_timeout
    )
    return {
        "status": "healthy" if health.healthy else "unhealthy",
        "metadatabase": {"status": "healthy" if health.database_ok else "unhealthy"},
        "components": {
            kind: {
                "status": "healthy" if c.healthy else "unhealthy",
                "latest_heartbeat": c.latest_heartbeat.isoformat(),
            }
            for kind, c in health.components.items()
        },
    }


@registry.route(
    "/openapi.json",
    "GET",
    summary="This API's OpenAPI 3.1 document",
    tag="Monitoring",
    permission=None,
    response={"type": "object"},
)
def get_openapi() -> Response:
    return jsonify(build_document(registry.operations, _version()))


TOKEN = {
    "type": "object",
    "required": ["token", "token_type", "expires_in"],
    "properties": {
        "token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer"},
    },
}


@registry.route(
    "/auth/token",
    "POST",
    summary="A bearer token for the authenticated user",
    tag="Auth",
    permission=Permission.READ,
    response=TOKEN,
    status=201,
)
def create_token() -> dict[str, Any]:
    """Authenticate this request with Basic credentials; the answer's token then serves as
    ``Authorization: Bearer <token>`` until it expires."""
    who = require(Permission.READ)
    lifetime = services().config.webserver.api_token_lifetime_minutes * 60
    return {
        "token": issue_token(current_app, who),
        "token_type": "Bearer",
        "expires_in": lifetime,
    }
