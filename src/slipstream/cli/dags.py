"""`slipstream dags ...` commands."""

from __future__ import annotations

import click


@click.group(name="dags")
def group() -> None:
    """Manage dags."""
