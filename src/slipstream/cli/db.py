"""`slipstream db ...` commands: migrate, check and reset the metadata database."""

from __future__ import annotations

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.service import database


@click.group(name="db")
def group() -> None:
    """Create, check and reset the metadata database."""


def _where(app: AppContext) -> str:
    return app.engine.url.render_as_string(hide_password=True)


@group.command()
@pass_app
def migrate(app: AppContext) -> None:
    """Create or upgrade the schema to the newest revision."""
    result = database.migrate(app.engine, actor=app.actor)
    if not result.changed:
        click.echo(f"The metadata database is already at revision {result.after}; nothing to do.")
    elif result.before is None:
        click.echo(f"Created the metadata database at {_where(app)} (revision {result.after}).")
    else:
        click.echo(
            f"Upgraded the metadata database from revision {result.before} to {result.after}."
        )


@group.command()
@pass_app
def check(app: AppContext) -> None:
    """Fail unless the schema is at the newest revision and matches the models."""
    revision = database.check(app.engine)
    click.echo(f"The metadata database is at revision {revision} and matches the models.")


@group.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def reset(app: AppContext, yes: bool) -> None:
    """Drop every table (all data is lost), then migrate."""
    if not yes:
        click.confirm(f"This deletes ALL data in {_where(app)}. Continue?", abort=True, err=True)
    result = database.reset(app.engine, actor=app.actor)
    click.echo(f"Reset the metadata database; it is now at revision {result.after}.")


@group.command(name="rotate-fernet-key")
@pass_app
def rotate_fernet_key(app: AppContext) -> None:
    """Re-encrypt every secret with the first key of secrets.fernet_key."""
    conns, variables = database.rotate_fernet_key(
        app.ready_session_factory, app.fernet, actor=app.actor
    )
    click.echo(f"Re-encrypted {conns} connection(s) and {variables} variable(s).")
