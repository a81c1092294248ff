"""`slipstream variables ...` commands."""

from __future__ import annotations

import click


@click.group(name="variables")
def group() -> None:
    """Manage variables."""
