"""`slipstream dags ...` commands: list, list-import-errors, reserialize and next-runs read the
DAGs in the database; trigger, pause and unpause steer them; state and runs show their runs.
Each parses its options, calls one service function and formats."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, emit_one, output_option
from slipstream.clock import utcnow
from slipstream.service import dags as service
from slipstream.service import inspection, runs, testing
from slipstream.states import DagRunState
from slipstream.store.models import Dag, DagRun

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
    """List DAGs, trigger, pause and test them; show their runs, import errors, upcoming runs."""


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


@group.command()
@click.argument("dag_id")
@click.option("--conf", "-c", "conf", help="JSON object of run configuration (overrides params).")
@click.option(
    "--logical-date",
    "-l",
    "logical_date",
    help="ISO date or datetime of the run (default: now); naive values are in the DAG's time zone.",
)
@click.option("--run-id", "-r", "run_id", help="Id of the run (default: manual__<logical date>).")
@output_option
@pass_app
def trigger(
    app: AppContext,
    dag_id: str,
    conf: str | None,
    logical_date: str | None,
    run_id: str | None,
    output: str,
) -> None:
    """Create a manual run of DAG_ID, queued for the scheduler."""
    run_conf = testing.parse_conf(conf)
    factory = app.ready_session_factory
    service.ensure_parsed(app.config, factory)
    when = None
    if logical_date is not None:
        parsed = runs.parse_date(logical_date, "--logical-date")
        when = runs.dag_logical_date(factory, dag_id, parsed)
    triggered = runs.trigger_dag(
        factory,
        dag_id,
        now=utcnow(),
        conf=run_conf,
        logical_date=when,
        run_id=run_id,
        actor=app.actor,
        database_url=app.config.database_url,
    )
    emit_one(
        {
            "dag_id": triggered.dag_id,
            "run_id": triggered.run_id,
            "state": triggered.state,
            "logical_date": triggered.logical_date,
            "conf": triggered.conf,
            "is_paused": triggered.is_paused,
        },
        output,
    )
    if triggered.is_paused:
        click.secho(
            f"DAG {dag_id} is paused: the run waits, queued, until `slipstream dags unpause {dag_id}`",
            fg="yellow",
            err=True,
        )


def _set_paused(app: AppContext, dag_id: str, paused: bool) -> None:
    factory = app.ready_session_factory
    service.ensure_parsed(app.config, factory)
    runs.set_paused(
        factory,
        dag_id,
        paused,
        now=utcnow(),
        actor=app.actor,
        database_url=app.config.database_url,
    )
    click.echo(f"DAG {dag_id} is {'paused' if paused else 'unpaused'}.")


@group.command()
@click.argument("dag_id")
@pass_app
def pause(app: AppContext, dag_id: str) -> None:
    """Pause DAG_ID: the scheduler creates and starts none of its runs until unpaused."""
    _set_paused(app, dag_id, True)


@group.command()
@click.argument("dag_id")
@pass_app
def unpause(app: AppContext, dag_id: str) -> None:
    """Unpause DAG_ID: the scheduler creates its due runs and starts queued ones."""
    _set_paused(app, dag_id, False)


def _duration(run: DagRun) -> float | None:
    if run.start_date is None or run.end_date is None:
        return None
    return round((run.end_date - run.start_date).total_seconds(), 3)


@group.command()
@click.argument("dag_id")
@click.argument("run_id")
@output_option
@pass_app
def state(app: AppContext, dag_id: str, run_id: str, output: str) -> None:
    """Print the state of run RUN_ID of DAG_ID (queued, running, success or failed)."""
    run = runs.get_run(app.ready_session_factory, dag_id, run_id)
    if output == "json":
        emit_one(
            {
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "state": run.state,
                "queued_at": run.queued_at,
                "start_date": run.start_date,
                "end_date": run.end_date,
            },
            output,
        )
    else:
        click.echo(run.state)


RUN_COLUMNS = [
    "run_id",
    "run_type",
    "state",
    "logical_date",
    "queued_at",
    "start_date",
    "end_date",
    "duration",
]


@group.command(name="runs")
@click.argument("dag_id")
@click.option(
    "--state",
    "state_",
    type=click.Choice([s.value for s in DagRunState]),
    help="Only runs in this state.",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=25,
    show_default=True,
    help="How many runs to show, newest first.",
)
@output_option
@pass_app
def runs_(app: AppContext, dag_id: str, state_: str | None, limit: int, output: str) -> None:
    """List the runs of DAG_ID, newest logical date first (duration in seconds)."""
    found = inspection.list_runs(
        app.ready_session_factory,
        dag_id,
        state=DagRunState(state_) if state_ else None,
        limit=limit,
    )
    rows = [
        {
            "run_id": r.run_id,
            "run_type": r.run_type,
            "state": r.state,
            "logical_date": r.logical_date,
            "queued_at": r.queued_at,
            "start_date": r.start_date,
            "end_date": r.end_date,
            "duration": _duration(r),
        }
        for r in found
    ]
    emit(rows, RUN_COLUMNS, output, title=f"Runs of {dag_id}")
