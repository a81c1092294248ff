"""``slipstream dags test``: one DAG run in this process, shown live."""

from __future__ import annotations

import sys
import time

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.run_display import RunDisplay
from slipstream.service import testing
from slipstream.states import DagRunState


@click.command(name="test")
@click.argument("dag_id")
@click.argument("logical_date", required=False)
@click.option("--conf", "-c", "conf", help="JSON object of run configuration (overrides params).")
@pass_app
def command(app: AppContext, dag_id: str, logical_date: str | None, conf: str | None) -> None:
    """Run DAG_ID once, here, with every task, and record the run like any other.

    LOGICAL_DATE is an ISO date or datetime (default: now). Exits 0 when the run succeeds,
    1 when it fails. Each task's log is kept per try under the log folder.
    """
    run_conf = testing.parse_conf(conf)
    _ = app.ready_session_factory  # the schema must be migrated
    dag = testing.load_dag(app.config, app.engine, dag_id)
    when = testing.parse_logical_date(logical_date, dag)
    started = time.monotonic()
    with RunDisplay(f"DAG {dag_id}") as display:
        result = testing.test_dag(
            config=app.config,
            engine=app.engine,
            fernet=app.fernet,
            dag=dag,
            logical_date=when,
            conf=run_conf,
            listener=display,
            actor=app.actor,
        )
    elapsed = time.monotonic() - started
    verdict = "succeeded" if result.state == DagRunState.SUCCESS else "failed"
    color = "green" if result.state == DagRunState.SUCCESS else "red"
    click.secho(f"DAG run {result.run_id} of {dag_id} {verdict} in {elapsed:.2f}s", fg=color)
    if result.reason:
        click.secho(f"Reason: {result.reason}", fg=color)
    for progress in result.tasks.values():
        if progress.error:
            click.echo(f"  {progress.task_id}: {progress.error}  (log: {progress.log_path})")
    sys.exit(0 if result.state == DagRunState.SUCCESS else 1)
