"""The services a request handler acts with, built once per app by ``create_app``.

Handlers reach them through :func:`services`; nothing here reads configuration at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from cryptography.fernet import MultiFernet
from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.store.crypto import load_fernet


@dataclass
class WebServices:
    config: Config
    session_factory: sessionmaker[Session]
    #: the clock; tests may pass a fixed one
    clock: Callable[[], datetime] = field(default=utcnow)

    @cached_property
    def fernet(self) -> MultiFernet:
        return load_fernet(self.config)

    @property
    def database_url(self) -> str:
        return self.config.database_url

    def now(self) -> datetime:
        return self.clock()


EXTENSION_KEY = "slipstream"


def services() -> WebServices:
    """The services of the app serving the current request."""
    found: WebServices = current_app.extensions[EXTENSION_KEY]
    return found
