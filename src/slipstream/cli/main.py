"""The ``slipstream`` command: the root group and the one boundary that turns errors into
a sentence and an exit code."""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from slipstream.cli.context import AppContext
from slipstream.errors import SlipstreamError

# Command groups load on first use: ``slipstream variables get`` never imports the SDK,
# the worker or the DAG processor, which keeps every command's start-up short.
_GROUPS = {
    "celery": "slipstream.cli.celery",
    "config": "slipstream.cli.config",
    "connections": "slipstream.cli.connections",
    "dags": "slipstream.cli.dags",
    "db": "slipstream.cli.db",
    "pools": "slipstream.cli.pools",
    "tasks": "slipstream.cli.tasks",
    "users": "slipstream.cli.users",
    "variables": "slipstream.cli.variables",
}
# Top-level commands, loaded the same way: (module, attribute).
_COMMANDS = {
    "dag-processor": ("slipstream.cli.dag_processor", "command"),
    "scheduler": ("slipstream.cli.components", "scheduler_command"),
    "standalone": ("slipstream.cli.standalone", "command"),
    "webserver": ("slipstream.cli.webserver", "command"),
    "worker": ("slipstream.cli.components", "worker_command"),
}
# What ``slipstream --help`` lists, so that listing loads none of the groups.
_SUMMARIES = {
    "dag-processor": "Parse the DAG folder continuously into the database.",
    "scheduler": "Run the scheduler: create DAG runs and queue ready tasks.",
    "standalone": "Run slipstream on this machine: DAG processor, scheduler, workers, web UI.",
    "webserver": "Serve the web UI and the REST API.",
    "worker": "Run a worker: claim queued tasks and run them.",
    "celery": "Celery workers: run the tasks the scheduler sends through a broker.",
    "config": "Show the configuration (file, environment and defaults).",
    "connections": "Manage connections (passwords and extras are encrypted at rest).",
    "dags": "List DAGs, trigger, pause, backfill and test them; show their runs and import errors.",
    "db": "Create, check and reset the metadata database.",
    "pools": "Manage pools: named limits on how many tasks run at once.",
    "tasks": "Inspect and run tasks: states, logs, clear, test.",
    "users": "Manage the users of the web UI and the REST API.",
    "variables": "Manage variables (values are encrypted at rest).",
}


class _Root(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*_GROUPS, *_COMMANDS, *self.commands])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SUMMARIES[name]) for name in sorted([*_GROUPS, *_COMMANDS])]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module, attribute = _COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        if cmd_name not in _GROUPS:
            return super().get_command(ctx, cmd_name)
        group: click.Group = importlib.import_module(_GROUPS[cmd_name]).group
        if cmd_name == "dags":
            from slipstream.cli import dags_backfill, dags_test

            group.add_command(dags_test.command)
            group.add_command(dags_backfill.command)
        return group

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SlipstreamError as exc:
            _report(ctx, exc, exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug: say so plainly, trace only with --verbose
            _report(ctx, exc, 1, bug=True)


def _report(ctx: click.Context, exc: BaseException, code: int, bug: bool = False) -> None:
    app = ctx.find_object(AppContext)
    verbose = bool(app and app.verbose)
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc) or type(exc).__name__
    if bug:
        message = f"unexpected {type(exc).__name__}: {message}"
        if not verbose:
            message += " (run with --verbose for the traceback)"
    click.secho(f"Error: {message}", fg="red", err=True)
    sys.exit(code)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug output.")
@click.version_option(package_name="slipstream")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """slipstream: a fast, light workflow orchestrator with Airflow's authoring API."""
    ctx.obj = AppContext(verbose=verbose)
