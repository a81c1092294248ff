"""The work queue: how ready task instances reach workers, and how their ends come back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipstream.errors import ConfigError

if TYPE_CHECKING:
    from slipstream.config import Config
    from slipstream.executors.base import Executor

EXECUTORS = ("local", "celery")


def make_executor(config: Config) -> Executor:
    """The executor ``core.executor`` names, for a scheduler. Celery is imported only when
    chosen: the embedded queue needs nothing but the database."""
    name = config.core.executor.strip().lower()
    if name == "local":
        from slipstream.executors.local import LocalExecutor

        return LocalExecutor(config.database_url)
    if name == "celery":
        require_celery()
        from slipstream.executors.celery import CeleryExecutor

        return CeleryExecutor(config)
    raise ConfigError(
        f"core.executor must be one of {', '.join(EXECUTORS)}, not {config.core.executor!r}"
    )


def require_celery() -> None:
    """Refuse, with one sentence, to use Celery when it is not installed."""
    try:
        import celery  # noqa: F401
    except ImportError:
        raise ConfigError(
            "core.executor is celery, but Celery is not installed: pip install 'slipstream[celery]'"
        ) from None
