"""``slipstream standalone``: the DAG processor, the scheduler and workers in one command."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import sys
import time

import click

from slipstream.cli.components import setup_logging
from slipstream.cli.context import AppContext, pass_app
from slipstream.clock import utcnow


@click.command(name="standalone")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), help="Tasks per worker.")
@click.option("--port", "-p", type=click.IntRange(1, 65535), help="Web UI port (webserver.port).")
@click.option("--no-webserver", is_flag=True, help="Run without the web UI and REST API.")
@pass_app
def command(
    app: AppContext, workers: int, concurrency: int | None, port: int | None, no_webserver: bool
) -> None:
    """Run slipstream on this machine: migrate the database, then the DAG processor, the
    scheduler, WORKERS workers and the web server, until Ctrl-C stops them all."""
    from slipstream.service.standalone import Component, Supervisor

    started = time.monotonic()
    setup_logging(app, "standalone")
    config = app.config
    host = config.webserver.host
    port = port or config.webserver.port
    extra = []
    if not no_webserver:
        from slipstream.web.server import check_port, serve

        check_port(host, port)
        extra.append(
            Component(
                "webserver",
                "webserver",
                functools.partial(serve, config, host=host, port=port),
                ready=functools.partial(_listening, host, port),
            )
        )
    supervisor = Supervisor(config, workers=workers, concurrency=concurrency, extra=extra)
    engine = app.engine
    supervisor.prepare(engine)
    admin_password = None
    if not no_webserver:
        from slipstream.service.users import create_first_admin

        admin_password = create_first_admin(
            app.session_factory, config.standalone_password_file, now=utcnow()
        )
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
    if not no_webserver:
        from slipstream.web.server import url_of

        click.echo(f"  web UI:      {url_of(host, port)}   (REST API under /api/v1)")
        if admin_password is not None:
            click.secho(
                f"  login:       admin / {admin_password}   (shown once; kept in "
                f"{config.standalone_password_file}, mode 0600)",
                fg="green",
            )
        elif config.standalone_password_file.exists():
            click.echo(f"  login:       admin (password in {config.standalone_password_file})")
    _print_next_steps(app)
    click.echo("Press Ctrl-C to stop.")
    supervisor.supervise()
    click.echo("slipstream stopped")


def _print_next_steps(app: AppContext) -> None:
    """How to reach this instance from another terminal, with a real DAG id to try."""
    from slipstream.service.dags import list_dags

    exe = sys.argv[0]
    if os.sep not in exe or shutil.which("slipstream") == os.path.abspath(exe):
        exe = "slipstream"
    else:
        exe = os.path.relpath(exe)
    dags = [d.dag_id for d in list_dags(app.session_factory) if d.is_active]
    dag_id = next((d for d in dags if "bash" in d), dags[0] if dags else "DAG_ID")
    click.echo("In another terminal:")
    click.echo(f"  export SLIPSTREAM_HOME={app.config.home}")
    if app.config.sources.get("database.url") == "env":
        click.echo("  export SLIPSTREAM__DATABASE__URL=...   (as here)")
    click.echo(f"  {exe} dags list")
    click.echo(f"  {exe} dags trigger {dag_id}")
    click.echo(f"  {exe} dags runs {dag_id}")
    click.echo(f"  {exe} tasks states {dag_id} RUN_ID")
    click.echo(f"  {exe} tasks logs {dag_id} RUN_ID TASK_ID --follow")


def _listening(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        with socket.create_connection((target, port), timeout=0.2):
            return True
    except OSError:
        return False
