"""``slipstream tasks ...`` commands: list and test tasks; show the states and logs of a run's
task instances; clear them so they run again."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, output_option
from slipstream.clock import utcnow
from slipstream.errors import InvalidInputError
from slipstream.service import clearing, inspection, runs, testing
from slipstream.service.inspection import TryLog
from slipstream.states import TaskInstanceState


@click.group(name="tasks")
def group() -> None:
    """Inspect and run tasks: list, test, states, logs, clear."""


@group.command(name="test")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("logical_date", required=False)
@click.option("--conf", "-c", "conf", help="JSON object of run configuration (overrides params).")
@pass_app
def test_command(
    app: AppContext, dag_id: str, task_id: str, logical_date: str | None, conf: str | None
) -> None:
    """Run TASK_ID of DAG_ID alone, here, with its log on the terminal.

    Dependencies are not checked and nothing is recorded in the database. Exits 0 when the
    task succeeds (or skips itself), 1 when it fails.
    """
    run_conf = testing.parse_conf(conf)
    _ = app.ready_session_factory  # the schema must be migrated
    dag = testing.load_dag(app.config, app.engine, dag_id)
    when = testing.parse_logical_date(logical_date, dag)
    outcome = testing.test_task(
        engine=app.engine,
        fernet=app.fernet,
        dag=dag,
        task_id=task_id,
        logical_date=when,
        conf=run_conf,
    )
    ok = outcome.state in (TaskInstanceState.SUCCESS, TaskInstanceState.SKIPPED)
    click.secho(
        f"Task {task_id} of {dag_id}: {outcome.state.value}"
        + (f" — {outcome.error}" if outcome.error else ""),
        fg="green" if ok else "red",
        err=not ok,
    )
    sys.exit(0 if ok else 1)


@group.command(name="list")
@click.argument("dag_id")
@output_option
@pass_app
def list_command(app: AppContext, dag_id: str, output: str) -> None:
    """List the tasks of DAG_ID in dependency order."""
    _ = app.ready_session_factory  # the schema must be migrated
    dag = testing.load_dag(app.config, app.engine, dag_id)
    rows = [
        {
            "task_id": t.task_id,
            "operator": t.task_type,
            "upstream": ", ".join(sorted(t.upstream_task_ids)),
            "trigger_rule": t.trigger_rule.value,
            "retries": t.retries,
            "pool": t.pool,
        }
        for t in dag.topological_sort()
    ]
    emit(
        rows,
        ["task_id", "operator", "upstream", "trigger_rule", "retries", "pool"],
        output,
        title="Tasks",
    )


TI_COLUMNS = [
    "task_id",
    "state",
    "try_number",
    "tries",
    "start_date",
    "end_date",
    "duration",
    "hostname",
    "error",
]
ERROR_WIDTH = 60


def _short(error: str | None) -> str | None:
    """The first line of an error, cut to fit a table cell."""
    if not error:
        return error
    lines = error.strip().splitlines() or [""]
    first = lines[0]
    if len(first) > ERROR_WIDTH or len(lines) > 1:
        return first[: ERROR_WIDTH - 1].rstrip() + "…"
    return first


@group.command(name="states")
@click.argument("dag_id")
@click.argument("run_id")
@output_option
@pass_app
def states_command(app: AppContext, dag_id: str, run_id: str, output: str) -> None:
    """Show every task instance of run RUN_ID of DAG_ID: state, tries, times, host, error.

    "tries" is how many tries the task instance may have in all (its retries plus one);
    the table shows the first line of each error, `-o json` the whole of it.
    """
    rows: list[dict[str, Any]] = [
        {
            "task_id": ti.task_id,
            "state": ti.state,
            "try_number": ti.try_number,
            "tries": ti.max_tries + 1,
            "start_date": ti.start_date,
            "end_date": ti.end_date,
            "duration": None if ti.duration is None else round(ti.duration, 3),
            "hostname": ti.hostname,
            "error": ti.error if output == "json" else _short(ti.error),
        }
        for ti in inspection.task_instances(app.ready_session_factory, dag_id, run_id)
    ]
    emit(rows, TI_COLUMNS, output, title=f"Tasks of {dag_id} run {run_id}")


POLL_SECONDS = 0.2


def _copy_new(log: TryLog, offset: int) -> int:
    """Print what the log gained since ``offset`` (from its file, or from the database when
    the try ran on another host); return the new offset."""
    while True:
        chunk = inspection.read_log_chunk(log, offset)
        if chunk.content:
            click.echo(chunk.content, nl=False)
            sys.stdout.flush()
        offset = chunk.next_offset
        if not chunk.more:
            return offset


def _follow(app: AppContext, log: TryLog) -> None:
    offset = 0
    live = True
    while live:
        live = inspection.try_is_live(app.ready_session_factory, log)
        # Read after looking at the state: once the try has ended, this read has it all.
        offset = _copy_new(dataclasses.replace(log, live=live), offset)
        if live:
            time.sleep(POLL_SECONDS)


@group.command(name="logs")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@click.option(
    "--try",
    "try_number",
    type=int,
    help="Which try (1 is the first; default: the latest).",
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing what the try writes until it ends.",
)
@pass_app
def logs_command(
    app: AppContext,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None,
    follow: bool,
) -> None:
    """Print the log of one try of TASK_ID in run RUN_ID of DAG_ID."""
    log = inspection.find_try_log(
        app.ready_session_factory,
        app.config.log_folder,
        dag_id,
        run_id,
        task_id,
        try_number,
        wait=follow,
    )
    if not follow or not log.live:
        _copy_new(log, 0)
        return
    try:
        _follow(app, log)
    except KeyboardInterrupt:  # the usual way to stop following: not a failure
        click.echo("", err=True)


CLEAR_COLUMNS = ["run_id", "task_id", "old_state", "try_number"]


@group.command(name="clear")
@click.argument("dag_id")
@click.option("-t", "--task-regex", help="Only tasks whose id this regex matches (re.search).")
@click.option("-d", "--downstream", is_flag=True, help="Also the tasks downstream of those.")
@click.option("-u", "--upstream", is_flag=True, help="Also the tasks upstream of those.")
@click.option(
    "-f", "--only-failed", is_flag=True, help="Only failed and upstream_failed task instances."
)
@click.option("--run-id", help="Only this run (default: every run of the DAG).")
@click.option(
    "-s",
    "--start-date",
    help="Only runs with a logical date from this ISO date or datetime on.",
)
@click.option(
    "-e",
    "--end-date",
    help="Only runs with a logical date up to this ISO date or datetime (inclusive).",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@output_option
@pass_app
def clear_command(
    app: AppContext,
    dag_id: str,
    task_regex: str | None,
    downstream: bool,
    upstream: bool,
    only_failed: bool,
    run_id: str | None,
    start_date: str | None,
    end_date: str | None,
    yes: bool,
    output: str,
) -> None:
    """Clear task instances of DAG_ID so that they run again.

    A cleared task instance goes back to state none with all its retries again (earlier
    tries stay in its history); a finished run with a cleared task goes back to queued and
    the scheduler runs it again. Naive dates are in the DAG's time zone.
    """
    options: dict[str, Any] = {
        "task_regex": task_regex,
        "upstream": upstream,
        "downstream": downstream,
        "only_failed": only_failed,
        "run_id": run_id,
        "start_date": runs.parse_date(start_date, "--start-date") if start_date else None,
        "end_date": runs.parse_date(end_date, "--end-date") if end_date else None,
        "actor": app.actor,
        "database_url": app.config.database_url,
    }
    factory = app.ready_session_factory
    if not yes:
        preview = clearing.clear_tasks(factory, dag_id, now=utcnow(), dry_run=True, **options)
        if not preview.tasks:
            click.echo("Nothing to clear.")
            return
        emit(_clear_rows(preview), CLEAR_COLUMNS, "table", title="Task instances to clear")
        if not sys.stdin.isatty():
            raise InvalidInputError(
                f"not clearing {clearing.summarize(preview.tasks)} without confirmation: "
                "run again with --yes"
            )
        click.confirm(f"Clear {clearing.summarize(preview.tasks)}?", abort=True, err=True)
    result = clearing.clear_tasks(factory, dag_id, now=utcnow(), **options)
    if output == "json":
        emit(_clear_rows(result), CLEAR_COLUMNS, output)
        return
    if not result.tasks:
        click.echo("Nothing to clear.")
        return
    if yes:
        emit(_clear_rows(result), CLEAR_COLUMNS, output, title="Cleared task instances")
    click.echo(f"Cleared {clearing.summarize(result.tasks)}.")
    if result.requeued_runs:
        click.echo(f"Queued again for the scheduler: {', '.join(result.requeued_runs)}.")


def _clear_rows(result: clearing.ClearResult) -> list[dict[str, Any]]:
    return [
        {
            "run_id": t.run_id,
            "task_id": t.task_id,
            "old_state": t.old_state,
            "try_number": t.try_number,
        }
        for t in result.tasks
    ]
