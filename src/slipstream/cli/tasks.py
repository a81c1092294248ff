"""``slipstream tasks ...`` commands."""

from __future__ import annotations

import sys

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, output_option
from slipstream.service import testing
from slipstream.states import TaskInstanceState


@click.group(name="tasks")
def group() -> None:
    """Inspect and run tasks."""


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
