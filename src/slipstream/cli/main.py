"""The ``slipstream`` command: the root group and the one boundary that turns errors into
a sentence and an exit code."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click

from slipstream.cli.context import AppContext
from slipstream.errors import SlipstreamError


class _Root(click.Group):
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


def _register() -> None:
    # Each command group lives in its own module; registering here keeps imports one-way.
    from slipstream.cli import config, connections, dags, db, pools, tasks, variables

    for module in (db, dags, tasks, variables, connections, pools, config):
        main.add_command(module.group)


_register()
