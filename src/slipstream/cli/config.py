"""`slipstream config ...` commands: show the effective configuration and where it came from.

The Fernet key is always masked and the passwords of the database and broker URLs hidden:
configuration output ends up in bug reports and terminals shared on screen.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, output_option
from slipstream.config import SECTIONS, describe
from slipstream.errors import InvalidInputError
from slipstream.masking import MASK

SECRET_KEYS = frozenset({"secrets.fernet_key"})


def _shown(key: str, value: Any) -> Any:
    if key in SECRET_KEYS and value:
        return MASK
    if key in ("database.url", "celery.broker_url") and value:
        try:
            return make_url(value).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):  # a broker URL SQLAlchemy cannot parse: hide it
            return MASK if key == "celery.broker_url" else value
    return value


@click.group(name="config")
def group() -> None:
    """Show the configuration (file, environment and defaults)."""


@group.command(name="list")
@click.option("--section", help="Only this section (core, database, logging, secrets).")
@output_option
@pass_app
def list_(app: AppContext, section: str | None, output: str) -> None:
    """Every key with its value, source (default/file/env), environment variable and meaning."""
    if section is not None and section not in SECTIONS:
        raise InvalidInputError(
            f"unknown configuration section {section!r}; known: {', '.join(SECTIONS)}"
        )
    rows = [
        {**row, "value": _shown(row["key"], row["value"])}
        for row in describe(app.config)
        if section is None or row["key"].split(".", 1)[0] == section
    ]
    emit(rows, ["key", "value", "source", "env", "doc"], output, title="Configuration")


@group.command(name="get-value")
@click.argument("section")
@click.argument("key")
@pass_app
def get_value(app: AppContext, section: str, key: str) -> None:
    """Print the value of SECTION KEY (the Fernet key stays masked)."""
    name = f"{section}.{key}"
    for row in describe(app.config):
        if row["key"] == name:
            value = _shown(name, row["value"])
            click.echo(str(value).lower() if isinstance(value, bool) else value)
            return
    raise InvalidInputError(f"unknown configuration key {name!r}")
