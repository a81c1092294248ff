"""``slipstream celery ...``: the worker of the Celery executor (core.executor = celery)."""

from __future__ import annotations

import sys

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.errors import ConfigError


@click.group(name="celery")
def group() -> None:
    """Celery workers: run the tasks the scheduler sends through a broker."""


@group.command(name="worker")
@click.option(
    "--queues", "-q", help="Comma-separated Celery queues to serve (default: worker.queues)."
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    help="Tasks run at once (default: celery.worker_concurrency).",
)
@pass_app
def worker_command(app: AppContext, queues: str | None, concurrency: int | None) -> None:
    """Run a Celery worker: take task messages from the broker and run each task, until
    stopped.

    Tasks go to the Celery queue named after their ``queue`` argument. SIGTERM or Ctrl-C
    stops taking messages and lets running tasks finish; a second one stops them now.
    """
    from slipstream.executors import require_celery

    config = app.config
    if config.core.executor.strip().lower() != "celery":
        raise ConfigError(
            f"core.executor is {config.core.executor!r}, so the scheduler sends no Celery "
            "messages: set it to celery (SLIPSTREAM__CORE__EXECUTOR=celery) everywhere, or "
            "run `slipstream worker` instead"
        )
    require_celery()
    from slipstream.cli.components import setup_logging
    from slipstream.worker.celery_task import serve

    setup_logging(app, "celery-worker")
    _ = app.ready_session_factory
    names = [q.strip() for q in (queues or config.worker.queues).split(",") if q.strip()]
    code = serve(
        config,
        app.engine,
        app.fernet,
        queues=names,
        concurrency=concurrency or config.celery.worker_concurrency,
        announce=click.echo,
    )
    click.echo("celery worker stopped")
    if code:
        sys.exit(code)
