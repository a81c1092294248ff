"""The pages' blueprint, and the permission check every page declares."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint

from slipstream.roles import Permission
from slipstream.security.auth import require

_F = TypeVar("_F", bound=Callable[..., Any])

# Templates and static files belong to the app (slipstream/web/templates, .../static).
blueprint = Blueprint("pages", __name__)


def needs(permission: Permission) -> Callable[[_F], _F]:
    """Refuse the page unless the user's role allows ``permission`` (anonymous users are
    sent to the login page by the app's error handler)."""

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            require(permission)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
