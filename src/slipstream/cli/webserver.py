"""``slipstream webserver``: the web UI and the REST API."""

from __future__ import annotations

import click

from slipstream.cli.components import setup_logging
from slipstream.cli.context import AppContext, pass_app


@click.command(name="webserver")
@click.option("--port", "-p", type=click.IntRange(1, 65535), help="Default: webserver.port.")
@click.option("--host", "-H", help="Address to listen on. Default: webserver.host.")
@pass_app
def command(app: AppContext, port: int | None, host: str | None) -> None:
    """Serve the web UI and the REST API (/api/v1) until stopped (Ctrl-C)."""
    from slipstream.service.users import list_users
    from slipstream.web.server import check_port, serve, url_of

    setup_logging(app, "webserver")
    config = app.config
    host = host or config.webserver.host
    port = port or config.webserver.port
    factory = app.ready_session_factory
    check_port(host, port)
    if not list_users(factory):
        click.secho(
            "No users yet: create one with `slipstream users create --username NAME "
            "--role Admin` to log in.",
            fg="yellow",
            err=True,
        )
    app.engine.dispose()
    click.echo(f"Web UI and REST API at {url_of(host, port)} (API under /api/v1)")
    serve(config, host=host, port=port)
