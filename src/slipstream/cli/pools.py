"""`slipstream pools ...` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, emit_one, output_option, write_json_file
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


@group.command(name="import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def import_(app: AppContext, file: Path) -> None:
    """Create or update the pools in a JSON FILE: {"name": {"slots": 4, "description": ""}}.

    All or nothing: one bad entry and no pool changes.
    """
    count = service.import_pools(app.ready_session_factory, file, actor=app.actor)
    click.echo(f"Imported {count} pool(s) from {file}.")


@group.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@pass_app
def export(app: AppContext, file: Path) -> None:
    """Write every pool to a JSON FILE ("-" for standard output), in the import format."""
    data = service.export_pools(app.ready_session_factory)
    if write_json_file(file, data):
        click.echo(f"Exported {len(data)} pool(s) to {file}.")
