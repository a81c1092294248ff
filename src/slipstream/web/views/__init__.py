"""The pages of the web UI: one blueprint, one module per area (login, DAGs, runs and task
instances, admin). Pages are rendered on the server; small scripts in static/ keep states
live by polling the REST API."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from slipstream.roles import Permission
from slipstream.security.auth import user
from slipstream.security.context import services
from slipstream.web.views import auth, dags  # noqa: F401  (each module adds its routes)
from slipstream.web.views.blueprint import blueprint

__all__ = ["blueprint", "init_app"]


def init_app(app: Flask) -> None:
    @app.context_processor
    def _globals() -> dict[str, Any]:
        who = user()
        return {
            "current": who,
            "Permission": Permission,
            "refresh_interval_ms": int(services().config.webserver.refresh_interval * 1000),
            "app_version": current_app.config.get("SLIPSTREAM_VERSION", ""),
        }
