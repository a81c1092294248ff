"""`slipstream db ...` commands."""

from __future__ import annotations

import click


@click.group(name="db")
def group() -> None:
    """Manage db."""
