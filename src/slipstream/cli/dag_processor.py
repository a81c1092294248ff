"""`slipstream dag-processor`: keep the stored DAGs in step with the DAG folder until stopped.

The command owns the process: it installs the SIGTERM/SIGINT handlers that let the loop
finish the check under way, mark its job stopped and exit 0.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import TYPE_CHECKING

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.clock import utcnow

if TYPE_CHECKING:
    from slipstream.dag_processor import PassResult

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _line(result: PassResult) -> str:
    return f"{utcnow():%Y-%m-%d %H:%M:%S} {result.summary()}"


@click.command(name="dag-processor")
@click.option("--once", is_flag=True, help="Parse every DAG file once, then exit.")
@pass_app
def command(app: AppContext, once: bool) -> None:
    """Parse the DAG files, then keep re-parsing new and changed ones until stopped.

    Every dag_processor.refresh_interval seconds the DAG folder is checked: new and changed
    files are parsed, the DAGs of deleted files are deactivated. SIGTERM or Ctrl-C stops it
    after the check under way; a second one stops it at once.
    """
    # Imported here: loading the command for `--help` should not load the processor.
    from slipstream.dag_processor import DagProcessorLoop

    config = app.config
    loop = DagProcessorLoop(config, app.ready_session_factory)
    if once:
        result = loop.run_once()
        loop.close()
        click.echo(_line(result))
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        loop.request_stop()
        # A check can take a while (a slow file gets core.dag_file_processor_timeout
        # seconds): a second signal ends the process without waiting for it.
        signal.signal(signum, signal.SIG_DFL)

    def report(result: PassResult) -> None:
        if result.changed:
            click.echo(_line(result))

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        click.echo(
            f"DAG processor: watching {config.dags_folder} "
            f"every {config.dag_processor.refresh_interval:g} s",
            err=True,
        )
        loop.run(on_pass=report)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
