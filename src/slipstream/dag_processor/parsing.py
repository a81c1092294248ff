"""Parsing DAG files in child processes, a few at a time, each with a deadline.

User code runs only in the children: a file that loops forever, segfaults or calls
``os._exit`` costs its own child and nothing else. Each child imports one file, serializes
its DAGs and sends them back as JSON over a pipe; the parent never unpickles user objects.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from slipstream.dagbag import import_dag_file, user_traceback
from slipstream.errors import DagImportError
from slipstream.sdk.dag import set_default_timezone
from slipstream.serialization import serialize_dag

# fork: the child starts warm (slipstream already imported), in a few milliseconds.
_CONTEXT = multiprocessing.get_context("fork")
# Seconds a child that has answered gets to exit before it is killed.
_EXIT_GRACE = 5.0


@dataclass(frozen=True)
class ParseOutcome:
    """What parsing one file gave: serialized DAGs, or an error with the user's traceback."""

    path: Path
    dags: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    stacktrace: str | None = None
    duration: float = 0.0
    #: the file's text as it was imported (for the UI's code view); None on an error
    source: str | None = None


@dataclass
class _Running:
    index: int
    path: Path
    process: BaseProcess
    reader: Connection
    started: float


def parse_files(
    paths: Sequence[Path],
    *,
    timeout: float,
    default_timezone: str,
    log_file: Path | None = None,
    parallelism: int = 2,
    on_done: Callable[[ParseOutcome], None] | None = None,
) -> list[ParseOutcome]:
    """Parse every file in its own child, ``parallelism`` at a time; outcomes in ``paths`` order."""
    outcomes: list[ParseOutcome | None] = [None] * len(paths)
    pending = list(enumerate(paths))
    running: dict[Connection, _Running] = {}
    while pending or running:
        while pending and len(running) < max(1, parallelism):
            index, path = pending.pop(0)
            child = _start(index, path, default_timezone, log_file)
            running[child.reader] = child
        next_deadline = min(c.started + timeout for c in running.values())
        ready = wait(list(running), timeout=max(0.0, next_deadline - time.monotonic()))
        finished: list[tuple[int, ParseOutcome]] = []
        for reader in ready:
            child = running.pop(reader)  # type: ignore[call-overload]
            finished.append((child.index, _collect(child)))
        now = time.monotonic()
        for reader, child in list(running.items()):
            if now - child.started >= timeout:
                del running[reader]
                finished.append((child.index, _kill(child, timeout)))
        for index, outcome in finished:
            outcomes[index] = outcome
            if on_done is not None:
                on_done(outcome)
    return [o for o in outcomes if o is not None]


def _start(index: int, path: Path, default_timezone: str, log_file: Path | None) -> _Running:
    reader, writer = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(
        target=_child_main,
        args=(writer, path, default_timezone, log_file),
        name=f"slipstream-parse-{path.name}",
        daemon=True,
    )
    started = time.monotonic()
    process.start()
    # Only the child may hold the writing end: when it dies, the reader sees EOF at once.
    writer.close()
    return _Running(index, path, process, reader, started)


def _collect(child: _Running) -> ParseOutcome:
    duration = time.monotonic() - child.started
    try:
        payload = json.loads(child.reader.recv_bytes())
    except (EOFError, OSError, ValueError):
        payload = None
    finally:
        child.reader.close()
    child.process.join(_EXIT_GRACE)
    if child.process.is_alive():  # answered but hangs on exit (a stuck atexit handler)
        child.process.kill()
        child.process.join()
    if payload is None:
        return ParseOutcome(child.path, error=_death_message(child.process), duration=duration)
    return ParseOutcome(
        child.path,
        dags=payload.get("dags", []),
        error=payload.get("error"),
        stacktrace=payload.get("stacktrace"),
        duration=duration,
        source=payload.get("source"),
    )


def _kill(child: _Running, timeout: float) -> ParseOutcome:
    child.process.kill()
    child.process.join()
    child.reader.close()
    return ParseOutcome(
        child.path,
        error=(
            f"importing the file timed out after {timeout:g} s "
            "(core.dag_file_processor_timeout); it was stopped"
        ),
        duration=time.monotonic() - child.started,
    )


def _death_message(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the process importing the file was killed by {name} before it finished"
    return f"the process importing the file exited with code {code} before it finished"


def _child_main(
    writer: Connection, path: Path, default_timezone: str, log_file: Path | None
) -> None:
    """Runs in the child: import one file and send back its serialized DAGs or the error."""
    try:
        if log_file is not None:
            _redirect_output(log_file)
        set_default_timezone(default_timezone)
        # Read before the import, so the text stored is the one that was imported (an edit
        # landing meanwhile is parsed again at the next check, its stamp having changed).
        source = path.read_text(encoding="utf-8", errors="replace")
        dags = [serialize_dag(d) for d in import_dag_file(path).dags]
        payload: dict[str, Any] = {"dags": dags, "source": source}
    except DagImportError as exc:
        payload = {"error": str(exc), "stacktrace": user_traceback(exc)}
    except BaseException as exc:  # a bug in serialization, or a user value it cannot hold
        payload = {"error": f"{type(exc).__name__}: {exc}", "stacktrace": traceback.format_exc()}
    try:
        writer.send_bytes(json.dumps(payload, default=str).encode())
        writer.close()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        # Skip interpreter shutdown: it would run the user's atexit handlers and finalize
        # objects inherited from the parent (such as pooled database connections).
        os._exit(0)


def _redirect_output(log_file: Path) -> None:
    """Send what user code prints to the processor's log, never to the CLI's stdout."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    if faulthandler.is_enabled():  # a crash report belongs in the log too
        faulthandler.enable(file=2)
