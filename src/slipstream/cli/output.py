"""Output for people (rich tables) and for scripts (``-o json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from slipstream.errors import InvalidInputError

output_option = click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["table", "json", "plain"]),
    default="table",
    show_default=True,
    help="Output format: a table for people, JSON for scripts.",
)


def table_console() -> Console:
    """A console for tables: the terminal's width on a terminal; when piped (logs, ``grep``),
    wide enough that no cell is cut."""
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=1000)
    return console


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def emit(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], output: str, title: str | None = None
) -> None:
    """Print ``rows`` (dicts) as a table, JSON array or tab-separated lines."""
    if output == "json":
        data = [{c: _jsonable(r.get(c)) for c in columns} for r in rows]
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if output == "plain":
        for r in rows:
            click.echo("\t".join(_cell(r.get(c)) for c in columns))
        return
    if not rows:
        click.echo(f"No {title.lower()}." if title else "Nothing to show.")
        return
    table = Table(title=title, header_style="bold")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in columns))
    table_console().print(table)


def emit_one(row: dict[str, Any], output: str) -> None:
    """Print one object as key/value lines, or as a JSON object."""
    if output == "json":
        click.echo(json.dumps({k: _jsonable(v) for k, v in row.items()}, indent=2, default=str))
        return
    width = max((len(k) for k in row), default=0)
    for k, v in row.items():
        click.echo(f"{k.ljust(width)}  {_cell(v)}")


def write_json_file(file: Path, data: Any) -> bool:
    """Write ``data`` as JSON to ``file``, or to standard output for ``-``. True for a file."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if str(file) == "-":
        click.echo(text, nl=False)
        return False
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {file}: {exc.strerror}") from None
    return True
