"""`slipstream dags ...` commands that read DAGs from the database: list, list-import-errors,
reserialize, next-runs. Each parses its options, calls one service function and formats."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, output_option
from slipstream.clock import utcnow
from slipstream.service import dags as service
from slipstream.store.models import Dag

DAG_COLUMNS = ["dag_id", "fileloc", "owners", "is_paused", "schedule", "tags", "next_run"]


def _dag_row(dag: Dag, include_active: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "owners": dag.owners,
        "is_paused": dag.is_paused,
        "schedule": dag.timetable_summary,
        "tags": ", ".join(dag.tags or []),
        "next_run": dag.next_dagrun,
    }
    if include_active:
        row["is_active"] = dag.is_active
    return row


@click.group(name="dags")
def group() -> None:
    """List DAGs, parse DAG files, show import errors and upcoming runs; test a DAG."""


@group.command(name="list")
@output_option
@click.option(
    "--include-inactive", is_flag=True, help="Also list DAGs whose file no longer defines them."
)
@pass_app
def list_(app: AppContext, output: str, include_inactive: bool) -> None:
    """List the DAGs known to the metadata database.

    If the database holds no DAGs yet (a fresh install), the DAG files are parsed first.
    """
    service.ensure_parsed(app.config, app.ready_session_factory)
    dags = service.list_dags(app.ready_session_factory, include_inactive=include_inactive)
    columns = [*DAG_COLUMNS, "is_active"] if include_inactive else DAG_COLUMNS
    emit([_dag_row(d, include_inactive) for d in dags], columns, output, title="DAGs")


@group.command(name="list-import-errors")
@output_option
@pass_app
def list_import_errors(app: AppContext, output: str) -> None:
    """List the DAG files that failed to import, with why (exit code 0 even if some did)."""
    rows = [
        {"filename": e.filename, "message": e.message, "timestamp": e.timestamp}
        for e in service.list_import_errors(app.ready_session_factory)
    ]
    emit(rows, ["filename", "message", "timestamp"], output, title="Import errors")


@group.command()
@pass_app
def reserialize(app: AppContext) -> None:
    """Parse every DAG file now and store the DAGs and import errors in the database."""
    factory = app.ready_session_factory
    if sys.stdout.isatty():
        columns = (TextColumn("Parsing DAG files"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=Console(), transient=True) as bar:
            task = bar.add_task("parse", total=None)

            def advance(_path: Path, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = service.reserialize(app.config, factory, progress=advance)
    else:
        result = service.reserialize(app.config, factory)
    click.echo(
        f"Parsed {result.files} file(s): {result.dags} DAG(s), {result.errors} import error(s)."
    )
    if result.errors:
        click.echo("See `slipstream dags list-import-errors` for the errors.")


@group.command(name="next-runs")
@click.argument("dag_id")
@click.option(
    "-n",
    "--num",
    "num",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many runs to show.",
)
@output_option
@pass_app
def next_runs(app: AppContext, dag_id: str, num: int, output: str) -> None:
    """Show the next scheduled runs of DAG_ID: logical date and data interval."""
    try:
        infos = service.next_runs(app.ready_session_factory, dag_id, num, utcnow())
    except service.NoScheduleError as exc:
        # Not a failure: the answer to "when does it run next" is "only when triggered".
        if output == "json":
            click.echo("[]")
        else:
            click.echo(str(exc))
        return
    rows = [
        {
            "logical_date": i.logical_date,
            "data_interval_start": i.data_interval.start,
            "data_interval_end": i.data_interval.end,
            "run_after": i.run_after,
        }
        for i in infos
    ]
    emit(rows, list(rows[0]) if rows else ["logical_date"], output, title=f"Next runs of {dag_id}")
