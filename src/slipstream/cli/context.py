"""What every CLI command gets: the configuration and the database, built once, lazily.

Commands that never touch the database (``config list``, ``--help``) never open it.
"""

from __future__ import annotations

import getpass
from functools import cached_property
from typing import TYPE_CHECKING

import click

from slipstream import masking
from slipstream.config import Config, load_config

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker


class AppContext:
    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose

    @cached_property
    def config(self) -> Config:
        config = load_config()
        masking.set_sensitive_words(config.sensitive_words)
        return config

    @cached_property
    def actor(self) -> str:
        """Who runs the command, for the audit log (the OS user until users exist)."""
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # a container user with no passwd entry
            return "unknown"

    @cached_property
    def engine(self) -> Engine:
        from slipstream.store.db import check_reachable, make_engine

        engine = make_engine(self.config)
        check_reachable(engine)
        return engine

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        from slipstream.store.db import session_factory

        return session_factory(self.engine)

    @cached_property
    def ready_session_factory(self) -> sessionmaker[Session]:
        """The session factory, once the schema is known to be migrated (data commands)."""
        from slipstream.store.schema import ensure_ready

        ensure_ready(self.engine)
        return self.session_factory

    @cached_property
    def fernet(self) -> MultiFernet:
        from slipstream.store.crypto import load_fernet

        return load_fernet(self.config)


pass_app = click.make_pass_decorator(AppContext)
