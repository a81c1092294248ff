"""The long-running components: ``slipstream scheduler``, ``slipstream worker``."""

from __future__ import annotations

import logging
import os
import signal
import socket
from types import FrameType

import click

from slipstream.cli.context import AppContext, pass_app


def setup_logging(app: AppContext, component: str) -> None:
    logging.basicConfig(
        level=app.config.logging.level.upper(),
        format=f"%(asctime)s %(levelname)s {component}[%(process)d] %(name)s: %(message)s",
    )
    # Alembic narrates every start-up's schema check at INFO; only its problems matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)


@click.command(name="scheduler")
@click.option(
    "--idle-exit",
    is_flag=True,
    help="Exit once no DAG run is queued or running (for scripts and tests).",
)
@pass_app
def scheduler_command(app: AppContext, idle_exit: bool) -> None:
    """Run the scheduler: create DAG runs, queue ready tasks, until stopped (Ctrl-C)."""
    from slipstream.executors import make_executor
    from slipstream.scheduler.scheduler import Scheduler

    setup_logging(app, "scheduler")
    scheduler = Scheduler(app.config, app.ready_session_factory, make_executor(app.config))
    stop = _StopFlag()
    scheduler.start()
    click.echo(f"scheduler started (pid {os.getpid()})")
    try:
        scheduler.run(stop, idle_exit=idle_exit, interrupt_fd=stop.fileno())
    finally:
        scheduler.stop()
    click.echo("scheduler stopped")


@click.command(name="worker")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Tasks run at once.")
@click.option("--queues", "-q", help="Comma-separated queues to serve (default: worker.queues).")
@click.option("--burst", is_flag=True, help="Exit once no queued work is left.")
@pass_app
def worker_command(
    app: AppContext, concurrency: int | None, queues: str | None, burst: bool
) -> None:
    """Run a worker: claim queued tasks and run them, until stopped.

    SIGTERM or Ctrl-C stops it taking work and lets running tasks finish (up to
    worker.shutdown_timeout); a second one stops them now.
    """
    from slipstream.worker.worker import Worker, install_stop_handlers

    setup_logging(app, "worker")
    _ = app.ready_session_factory
    worker = Worker(
        app.config,
        app.engine,
        app.fernet,
        concurrency=concurrency,
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        burst=burst,
    )
    install_stop_handlers(worker)
    click.echo(
        f"worker started: queues {', '.join(worker.queues)}, concurrency {worker.concurrency}"
    )
    worker.run()
    click.echo(f"worker stopped after {worker.tries_run} tries")


class _StopFlag:
    """True once SIGTERM or SIGINT arrived. The scheduler finishes its pass and exits."""

    def __init__(self) -> None:
        self.stopped = False
        # A signal only sets a flag; the byte Python writes to this socket on each signal
        # wakes the loop's select() at once instead of at its next timeout.
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def fileno(self) -> int:
        return self._read.fileno()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def __call__(self) -> bool:
        return self.stopped
