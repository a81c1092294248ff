"""The pages of the web UI: one blueprint, one module per area (login, the DAG list, a
DAG's tabs, triggering, runs, task instances, admin). Pages are rendered on the server;
small scripts in static/ keep states live by polling the REST API and the pages' own JSON
routes under /ui/."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from slipstream.roles import Permission
from slipstream.security.auth import user
from slipstream.security.context import services

# each module adds its routes to the blueprint
from slipstream.web.views import (  # noqa: F401
    admin,
    admin_config,
    admin_connections,
    auth,
    dag_pages,
    dags,
    runs,
    task_instances,
    trigger,
)
from slipstream.web.views.blueprint import blueprint
from slipstream.web.views.common import init_filters

__all__ = ["blueprint", "init_app"]


def init_app(app: Flask) -> None:
    init_filters(app)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        who = user()
        return {
            "current": who,
            "Permission": Permission,
            "refresh_interval_ms": int(services().config.webserver.refresh_interval * 1000),
            "app_version": current_app.config.get("SLIPSTREAM_VERSION", ""),
        }
