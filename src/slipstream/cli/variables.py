"""`slipstream variables ...` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, output_option, write_json_file
from slipstream.errors import InvalidInputError, VariableNotFound
from slipstream.masking import MASK, is_sensitive_key
from slipstream.service import variables as service


@click.group(name="variables")
def group() -> None:
    """Manage variables (values are encrypted at rest)."""


@group.command(name="set")
@click.argument("key")
@click.argument("value")
@click.option("--description", help="What the variable is for.")
@click.option("-j", "--json", "as_json", is_flag=True, help="VALUE is JSON; store it normalised.")
@pass_app
def set_(app: AppContext, key: str, value: str, description: str | None, as_json: bool) -> None:
    """Create or replace variable KEY."""
    if as_json:
        try:
            value = json.dumps(json.loads(value))
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"the value of {key!r} is not valid JSON: {exc}") from None
    created = service.set_variable(
        app.ready_session_factory, app.fernet, key, value, description=description, actor=app.actor
    )
    click.echo(f"{'Created' if created else 'Updated'} variable {key}.")


@group.command()
@click.argument("key")
@click.option("-d", "--default", help="Print this instead of failing when KEY does not exist.")
@click.option(
    "-j", "--json", "as_json", is_flag=True, help="Parse the value as JSON and pretty-print it."
)
@pass_app
def get(app: AppContext, key: str, default: str | None, as_json: bool) -> None:
    """Print the value of variable KEY (unmasked: you asked for it)."""
    try:
        value = service.get_variable(app.ready_session_factory, app.fernet, key).value
    except VariableNotFound:
        if default is None:
            raise
        value = default
    if as_json:
        try:
            value = json.dumps(json.loads(value), indent=2)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"variable {key!r} is not valid JSON: {exc}") from None
    click.echo(value)


@group.command(name="list")
@output_option
@pass_app
def list_(app: AppContext, output: str) -> None:
    """List variables; values of sensitive keys are shown as ***."""
    rows = [
        {
            "key": v.key,
            "value": MASK if is_sensitive_key(v.key) else v.value,
            "description": v.description,
        }
        for v in service.list_variables(app.ready_session_factory, app.fernet)
    ]
    emit(rows, ["key", "value", "description"], output, title="Variables")


@group.command()
@click.argument("key")
@pass_app
def delete(app: AppContext, key: str) -> None:
    """Delete variable KEY."""
    service.delete_variable(app.ready_session_factory, key, actor=app.actor)
    click.echo(f"Deleted variable {key}.")


@group.command(name="import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def import_(app: AppContext, file: Path) -> None:
    """Set every variable of a JSON object file (all or nothing)."""
    count = service.import_variables(app.ready_session_factory, app.fernet, file, actor=app.actor)
    click.echo(f"Imported {count} variable(s) from {file}.")


@group.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@pass_app
def export(app: AppContext, file: Path) -> None:
    """Write every variable to a JSON file ("-" for standard output). Values are NOT masked."""
    data: dict[str, Any] = service.export_variables(app.ready_session_factory, app.fernet)
    if not write_json_file(file, data):
        return
    click.echo(f"Exported {len(data)} variable(s) to {file}.")
