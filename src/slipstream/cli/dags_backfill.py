"""``slipstream dags backfill``: queue a DAG's runs for a range of past dates, then follow
them to the end."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit
from slipstream.clock import utcnow
from slipstream.service import backfill as service
from slipstream.service import runs
from slipstream.service.backfill import BackfillAction, BackfillResult, ReprocessBehavior
from slipstream.service.testing import parse_conf
from slipstream.states import DagRunState

COLUMNS = ["logical_date", "run_id", "action", "state"]

NO_SCHEDULER = (
    "Warning: no scheduler is running: the runs wait, queued, until one starts "
    "(`slipstream scheduler`). Ctrl-C stops waiting and leaves them queued."
)
NO_SCHEDULER_NO_WAIT = (
    "Warning: no scheduler is running: the runs wait, queued, until one starts "
    "(`slipstream scheduler`)."
)


@click.command(name="backfill")
@click.argument("dag_id")
@click.option(
    "-s",
    "--start-date",
    required=True,
    help="First logical date: an ISO date or datetime (without an offset: the DAG's time zone).",
)
@click.option("-e", "--end-date", required=True, help="Last logical date, included (same form).")
@click.option(
    "--reprocess-behavior",
    type=click.Choice([b.value for b in ReprocessBehavior]),
    default=ReprocessBehavior.NONE.value,
    show_default=True,
    help="Finished runs to run again: none, failed ones, or failed and successful ones.",
)
@click.option(
    "-c",
    "--conf",
    "conf",
    help="JSON object of run configuration for the new runs (checked against the params).",
)
@click.option(
    "--run-backwards",
    is_flag=True,
    help="Newest logical date first (refused for DAGs with depends_on_past tasks).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be done; change nothing.")
@click.option("--no-wait", is_flag=True, help="Queue the runs and return at once.")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format: a table for people, JSON for scripts.",
)
@pass_app
def command(
    app: AppContext,
    dag_id: str,
    start_date: str,
    end_date: str,
    reprocess_behavior: str,
    conf: str | None,
    run_backwards: bool,
    dry_run: bool,
    no_wait: bool,
    output: str,
) -> None:
    """Queue the runs DAG_ID's schedule has for the logical dates from --start-date to
    --end-date, for the scheduler to run, and show them until they have all finished.

    Only intervals that have ended are backfilled. Runs that exist are left as they are,
    unless --reprocess-behavior says to run finished ones again; runs still queued or
    running are always left alone. A paused DAG's backfill runs all the same. Exits 0 when
    every run succeeded (or with --no-wait / --dry-run, once queued / shown), 1 if any
    failed, 130 on Ctrl-C (the runs carry on without this command).
    """
    result = service.backfill_dag(
        app.ready_session_factory,
        dag_id,
        start_date=runs.parse_date(start_date, "--start-date"),
        end_date=runs.parse_date(end_date, "--end-date"),
        now=utcnow(),
        reprocess_behavior=ReprocessBehavior(reprocess_behavior),
        conf=parse_conf(conf),
        run_backwards=run_backwards,
        dry_run=dry_run,
        actor=app.actor,
        database_url=app.config.database_url,
    )
    queued = result.queued_run_ids
    if output == "table":
        _print_plan(result)
    if dry_run or not queued:
        if output == "json":
            _print_json(result, {})
        return
    timeout = app.config.scheduler.task_heartbeat_timeout
    if not service.scheduler_running(app.ready_session_factory, now=utcnow(), timeout=timeout):
        click.secho(NO_SCHEDULER_NO_WAIT if no_wait else NO_SCHEDULER, fg="yellow", err=True)
    if no_wait:
        if output == "json":
            _print_json(result, {})
        return
    states: dict[str, str] = {}
    try:
        states = _follow(app, result, to_stderr=output == "json")
    except KeyboardInterrupt:
        if output == "json":
            _print_json(result, states)
        click.echo(
            "Stopped waiting: the backfill's runs carry on, queued or running, in the scheduler.",
            err=True,
        )
        sys.exit(130)
    counts = Counter(states.values())
    if output == "json":
        _print_json(result, states)
    else:
        failed = len(queued) - counts[DagRunState.SUCCESS.value]
        color = "red" if failed else "green"
        click.secho(
            f"Backfill of {dag_id} finished: {counts[DagRunState.SUCCESS.value]} run(s) "
            f"succeeded, {failed} failed.",
            fg=color,
        )
    sys.exit(0 if counts[DagRunState.SUCCESS.value] == len(queued) else 1)


def _print_plan(result: BackfillResult) -> None:
    span = f"{result.start_date.isoformat()} to {result.end_date.isoformat()}"
    title = f"Backfill of {result.dag_id}, {span}"
    if result.dry_run:
        title += " (dry run: nothing is written)"
    rows = [
        {
            "logical_date": r.logical_date,
            "run_id": r.run_id,
            "action": r.action.value,
            "state": r.state,
        }
        for r in result.runs
    ]
    emit(rows, COLUMNS, "table", title=title)
    create, rerun = result.count(BackfillAction.CREATE), result.count(BackfillAction.RERUN)
    kept = f"{result.count(BackfillAction.SKIP_EXISTS)} finished and " + (
        f"{result.count(BackfillAction.SKIP_ACTIVE)} queued or running run(s) as they are"
    )
    if result.dry_run:
        click.echo(
            f"Would queue {create + rerun} run(s) ({create} new, {rerun} to run again) "
            f"and leave {kept}."
        )
        return
    if not create and not rerun:
        hint = ""
        if result.count(BackfillAction.SKIP_EXISTS) and (
            result.reprocess_behavior != ReprocessBehavior.COMPLETED
        ):
            hint = " (--reprocess-behavior failed or completed runs finished ones again)"
        click.echo(f"Nothing to do: every run in the range exists{hint}.")
        return
    click.echo(f"Queued {create + rerun} run(s) ({create} new, {rerun} to run again); left {kept}.")
    if result.is_paused:
        click.echo(f"DAG {result.dag_id!r} is paused: its backfill runs proceed all the same.")


def _follow(app: AppContext, result: BackfillResult, *, to_stderr: bool) -> dict[str, str]:
    """Poll the runs until they have all finished: a progress bar on a terminal, one line
    per finished run otherwise. Returns the final states."""
    run_ids = result.queued_run_ids
    logical = {r.run_id: r.logical_date for r in result.runs}
    polls = service.watch(app.ready_session_factory, result.dag_id, run_ids)
    states: dict[str, str] = {}
    if (sys.stderr if to_stderr else sys.stdout).isatty():
        columns = (
            TextColumn(f"Backfill of {result.dag_id}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
        )
        with Progress(*columns, console=Console(stderr=to_stderr)) as bar:
            task = bar.add_task("runs", total=len(run_ids), detail="")
            for states in polls:
                done = sum(1 for s in states.values() if service.is_finished(s))
                bar.update(task, completed=done, detail=_detail(states))
        return states
    announced: set[str] = set()
    for states in polls:
        for run_id in run_ids:
            state = states[run_id]
            if run_id not in announced and service.is_finished(state):
                announced.add(run_id)
                click.echo(
                    f"{logical[run_id].isoformat()}  {run_id}  {state}  "
                    f"({len(announced)}/{len(run_ids)})",
                    err=to_stderr,
                )
    return states


def _detail(states: Mapping[str, str]) -> str:
    counts = Counter(states.values())
    parts = [
        f"{counts[DagRunState.SUCCESS.value]} success",
        f"{counts[DagRunState.FAILED.value] + counts[service.GONE]} failed",
        f"{counts[DagRunState.RUNNING.value]} running",
        f"{counts[DagRunState.QUEUED.value]} queued",
    ]
    return ", ".join(parts)


def _print_json(result: BackfillResult, states: Mapping[str, str]) -> None:
    data: dict[str, Any] = {
        "dag_id": result.dag_id,
        "start_date": result.start_date.isoformat(),
        "end_date": result.end_date.isoformat(),
        "reprocess_behavior": result.reprocess_behavior.value,
        "run_backwards": result.run_backwards,
        "dry_run": result.dry_run,
        "is_paused": result.is_paused,
        "runs": [
            {
                "logical_date": r.logical_date.isoformat(),
                "data_interval_start": r.data_interval_start.isoformat(),
                "data_interval_end": r.data_interval_end.isoformat(),
                "run_id": r.run_id,
                "action": r.action.value,
                "state": states.get(r.run_id, r.state),
            }
            for r in result.runs
        ],
    }
    click.echo(json.dumps(data, indent=2))
