"""`slipstream config ...` commands."""

from __future__ import annotations

import click


@click.group(name="config")
def group() -> None:
    """Manage config."""
