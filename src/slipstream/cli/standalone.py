"""``slipstream standalone``: the DAG processor, the scheduler and workers in one command."""

from __future__ import annotations

import time

import click

from slipstream.cli.components import setup_logging
from slipstream.cli.context import AppContext, pass_app


@click.command(name="standalone")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Tasks per worker.")
@pass_app
def command(app: AppContext, workers: int, concurrency: int | None) -> None:
    """Run slipstream on this machine: migrate the database, then the DAG processor, the
    scheduler and WORKERS workers, until Ctrl-C stops them all."""
    from slipstream.service.standalone import Supervisor

    started = time.monotonic()
    setup_logging(app, "standalone")
    config = app.config
    supervisor = Supervisor(config, workers=workers, concurrency=concurrency)
    engine = app.engine
    supervisor.prepare(engine)
    supervisor.start(engine)
    if not supervisor.wait_ready(engine):
        click.secho("the scheduler or a worker did not start; stopping", fg="red", err=True)
        supervisor.stop_all()
        raise SystemExit(1)
    elapsed = time.monotonic() - started
    click.echo(f"slipstream is ready in {elapsed:.2f} s")
    click.echo(f"  home:        {config.home}")
    click.echo(f"  DAGs folder: {config.dags_folder}")
    click.echo(f"  database:    {config.database_url}")
    click.echo("  trigger a run:   slipstream dags trigger DAG_ID")
    click.echo(
        "  watch it:        slipstream dags runs DAG_ID; slipstream tasks states DAG_ID RUN_ID"
    )
    click.echo("Press Ctrl-C to stop.", nl=True)
    supervisor.supervise()
    click.echo("slipstream stopped")
