"""`slipstream pools ...` commands."""

from __future__ import annotations

import click


@click.group(name="pools")
def group() -> None:
    """Manage pools."""
