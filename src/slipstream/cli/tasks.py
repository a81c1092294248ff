"""`slipstream tasks ...` commands."""

from __future__ import annotations

import click


@click.group(name="tasks")
def group() -> None:
    """Manage tasks."""
