"""`slipstream pools ...` commands."""

from __future__ import annotations

from typing import Any

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, emit_one, output_option
from slipstream.service import pools as service
from slipstream.store.pools import PoolUsage

COLUMNS = ["pool", "slots", "occupied", "running", "queued", "open", "description"]


def _row(pool: PoolUsage) -> dict[str, Any]:
    return {
        "pool": pool.pool,
        "slots": pool.slots,
        "occupied": pool.occupied,
        "running": pool.running,
        "queued": pool.queued,
        "open": pool.open,
        "description": pool.description,
    }


@click.group(name="pools")
def group() -> None:
    """Manage pools: named limits on how many tasks run at once."""


@group.command(name="set")
@click.argument("name")
@click.argument("slots", type=int)
@click.argument("description", required=False)
@pass_app
def set_(app: AppContext, name: str, slots: int, description: str | None) -> None:
    """Create pool NAME or change its SLOTS (and DESCRIPTION)."""
    pool = service.set_pool(app.ready_session_factory, name, slots, description, actor=app.actor)
    click.echo(f"Pool {pool.pool} has {pool.slots} slot(s), {pool.occupied} occupied.")


@group.command()
@click.argument("name")
@output_option
@pass_app
def get(app: AppContext, name: str, output: str) -> None:
    """Show pool NAME with its slot usage."""
    emit_one(_row(service.get_pool(app.ready_session_factory, name)), output)


@group.command(name="list")
@output_option
@pass_app
def list_(app: AppContext, output: str) -> None:
    """List pools with their slots, occupied (running + queued) and open slots."""
    rows = [_row(p) for p in service.list_pools(app.ready_session_factory)]
    emit(rows, COLUMNS, output, title="Pools")


@group.command()
@click.argument("name")
@pass_app
def delete(app: AppContext, name: str) -> None:
    """Delete pool NAME."""
    service.delete_pool(app.ready_session_factory, name, actor=app.actor)
    click.echo(f"Deleted pool {name}.")
