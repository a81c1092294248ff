"""`slipstream connections ...` commands (Airflow's flags)."""

from __future__ import annotations

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, emit_one, output_option
from slipstream.service import connections as service

COLUMNS = [
    "conn_id",
    "conn_type",
    "description",
    "host",
    "schema",
    "login",
    "password",
    "port",
    "extra",
    "uri",
]

show_secrets_option = click.option(
    "--show-secrets", is_flag=True, help="Show passwords and sensitive extras instead of ***."
)


@click.group(name="connections")
def group() -> None:
    """Manage connections (passwords and extras are encrypted at rest)."""


@group.command()
@click.argument("conn_id")
@click.option(
    "--conn-uri",
    help="The whole connection as a URI: type://login:password@host:port/schema?extra=1",
)
@click.option(
    "--conn-json",
    help='The whole connection as JSON: {"conn_type": "postgres", "host": ..., "extra": {...}}',
)
@click.option("--conn-type", help="Connection type (postgres, http, ...).")
@click.option("--conn-host")
@click.option("--conn-login")
@click.option("--conn-password")
@click.option("--conn-schema")
@click.option("--conn-port", type=int)
@click.option("--conn-extra", help="Extras as a JSON object.")
@click.option("--conn-description")
@pass_app
def add(
    app: AppContext,
    conn_id: str,
    conn_uri: str | None,
    conn_json: str | None,
    conn_type: str | None,
    conn_host: str | None,
    conn_login: str | None,
    conn_password: str | None,
    conn_schema: str | None,
    conn_port: int | None,
    conn_extra: str | None,
    conn_description: str | None,
) -> None:
    """Add connection CONN_ID, from a URI, from JSON or from separate fields."""
    conn = service.build_connection(
        conn_id,
        uri=conn_uri,
        conn_type=conn_type,
        host=conn_host,
        login=conn_login,
        password=conn_password,
        schema=conn_schema,
        port=conn_port,
        extra=conn_extra,
        description=conn_description,
        json_text=conn_json,
    )
    service.add_connection(app.ready_session_factory, app.fernet, conn, actor=app.actor)
    click.echo(f"Added connection {conn_id}.")


@group.command()
@click.argument("conn_id")
@show_secrets_option
@output_option
@pass_app
def get(app: AppContext, conn_id: str, show_secrets: bool, output: str) -> None:
    """Show connection CONN_ID."""
    conn = service.get_connection(app.ready_session_factory, app.fernet, conn_id)
    emit_one(service.describe_connection(conn, show_secrets=show_secrets), output)


@group.command(name="list")
@show_secrets_option
@output_option
@pass_app
def list_(app: AppContext, show_secrets: bool, output: str) -> None:
    """List connections."""
    rows = [
        service.describe_connection(conn, show_secrets=show_secrets)
        for conn in service.list_connections(app.ready_session_factory, app.fernet)
    ]
    emit(rows, COLUMNS, output, title="Connections")


@group.command()
@click.argument("conn_id")
@pass_app
def delete(app: AppContext, conn_id: str) -> None:
    """Delete connection CONN_ID."""
    service.delete_connection(app.ready_session_factory, conn_id, actor=app.actor)
    click.echo(f"Deleted connection {conn_id}.")
