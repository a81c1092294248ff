"""Live display of a DAG run's tasks: a rich table on a terminal, one line per change
otherwise (CI logs, pipes)."""

from __future__ import annotations

import sys
import time
from types import TracebackType

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from slipstream.cli.output import table_console
from slipstream.states import TaskInstanceState
from slipstream.worker.dag_test import TaskProgress

STATE_STYLE = {
    TaskInstanceState.NONE: "dim",
    TaskInstanceState.SCHEDULED: "cyan",
    TaskInstanceState.QUEUED: "cyan",
    TaskInstanceState.RUNNING: "bold yellow",
    TaskInstanceState.SUCCESS: "bold green",
    TaskInstanceState.FAILED: "bold red",
    TaskInstanceState.UP_FOR_RETRY: "yellow",
    TaskInstanceState.SKIPPED: "magenta",
    TaskInstanceState.UPSTREAM_FAILED: "red",
    TaskInstanceState.REMOVED: "dim",
}


def _duration(p: TaskProgress) -> str:
    if p.duration is not None:
        return f"{p.duration:.2f}s"
    if p.state == TaskInstanceState.RUNNING and p.started is not None:
        return f"{time.monotonic() - p.started:.1f}s"
    return ""


def progress_table(tasks: dict[str, TaskProgress], title: str, show_logs: bool = True) -> Table:
    table = Table(title=title, header_style="bold", expand=False)
    table.add_column("task")
    table.add_column("state")
    table.add_column("try", justify="right")
    table.add_column("duration", justify="right")
    if show_logs:
        table.add_column("log")
    for p in tasks.values():
        row = [
            p.task_id,
            f"[{STATE_STYLE[p.state]}]{p.state.value}[/]",
            str(p.try_number or ""),
            _duration(p),
        ]
        if show_logs:
            row.append(str(p.log_path or ""))
        table.add_row(*row)
    return table


class RunDisplay:
    def __init__(self, title: str) -> None:
        self.title = title
        self.tasks: dict[str, TaskProgress] = {}
        self.console = Console()
        self.live = self.console.is_terminal and sys.stdout.isatty()
        self._live: Live | None = None
        self._last: dict[str, tuple[TaskInstanceState, int]] = {}

    def __enter__(self) -> RunDisplay:
        if self.live:
            self._live = Live(
                progress_table(self.tasks, self.title, show_logs=False),
                console=self.console,
                refresh_per_second=8,
                transient=True,
                get_renderable=lambda: progress_table(self.tasks, self.title, show_logs=False),
            )
            self._live.__enter__()
        return self

    def __call__(self, progress: TaskProgress) -> None:
        self.tasks[progress.task_id] = progress
        if self.live:
            return
        key = (progress.state, progress.try_number)
        if self._last.get(progress.task_id) == key or progress.state == TaskInstanceState.NONE:
            return
        self._last[progress.task_id] = key
        stamp = time.strftime("%H:%M:%S")
        line = f"[{stamp}] {progress.task_id}: {progress.state.value}"
        if progress.try_number:
            line += f" (try {progress.try_number})"
        if progress.state == TaskInstanceState.RUNNING and progress.log_path:
            line += f"  log: {progress.log_path}"
        if progress.error and progress.state in (
            TaskInstanceState.FAILED,
            TaskInstanceState.UP_FOR_RETRY,
        ):
            line += f"  — {progress.error}"
        click.echo(line)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
        if not self.tasks:
            return
        # On a terminal the table fits the screen, so the logs' folder gets a line of its own
        # rather than a cut-off column.
        table_console().print(progress_table(self.tasks, self.title, show_logs=not self.live))
        logs = [p.log_path for p in self.tasks.values() if p.log_path is not None]
        if self.live and logs:
            folder = logs[0].parent.parent
            click.echo(f"Logs: {folder}/task_id=<task>/attempt=<try>.log")
