"""The API's blueprint and the registry its endpoint modules declare themselves on."""

from __future__ import annotations

from flask import Blueprint

from slipstream.api.registry import ApiRegistry

API_PREFIX = "/api/v1"

blueprint = Blueprint("api", __name__, url_prefix=API_PREFIX)
registry = ApiRegistry(blueprint)
