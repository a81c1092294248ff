"""`slipstream connections ...` commands."""

from __future__ import annotations

import click


@click.group(name="connections")
def group() -> None:
    """Manage connections."""
