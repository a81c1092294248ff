"""Looking at runs, task instances and task logs, for the CLI, the REST API and the UI.

Everything here only reads: the database, in read-only transactions, and the log files.
A try's log is read from its file when the file is on this host, and otherwise from the
chunks its worker shipped to the database (``logging.ship_to_database``): offsets are the
log's byte offsets in both, so a reader need not know which it got.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import DagRunNotFound, InvalidInputError, NotFoundError, TaskNotFound
from slipstream.serialization import SerializedDag
from slipstream.service.dags import _not_found
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import dags as dag_store
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store import task_logs as log_store
from slipstream.store.db import transaction
from slipstream.store.models import DagRun, TaskInstance, TaskInstanceHistory
from slipstream.store.task_instances import TIKey
from slipstream.store.task_logs import whole_characters
from slipstream.task_logs import try_log_path

#: the states in which a try may still write to its log
LIVE_STATES = frozenset({TaskInstanceState.QUEUED.value, TaskInstanceState.RUNNING.value})


@dataclass(frozen=True)
class TryLog:
    """Where the log of one try of a task instance is, and whether the try still runs."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    path: Path
    #: the try is queued or running: its log may not exist yet, or may still grow
    live: bool
    map_index: int = -1
    #: where the log was found: "file" (``path``, on this host), "database" (shipped there
    #: by the worker of another host), or "" (a live try that has written nothing yet)
    source: str = "file"
    #: to read the shipped log when ``path`` is not on this host
    session_factory: sessionmaker[Session] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> TIKey:
        return TIKey(self.dag_id, self.run_id, self.task_id, self.map_index)


def require_run(session: Session, dag_id: str, run_id: str) -> DagRun:
    """The run, or :class:`DagNotFound` (naming close ids) / :class:`DagRunNotFound`."""
    run = run_store.get_dag_run(session, dag_id, run_id)
    if run is None:
        if dag_store.get(session, dag_id) is None:
            raise _not_found(session, dag_id)
        raise DagRunNotFound(f"DAG {dag_id!r} has no run {run_id!r}")
    return run


def list_runs(
    session_factory: sessionmaker[Session],
    dag_id: str,
    *,
    state: DagRunState | None = None,
    limit: int = 25,
) -> list[DagRun]:
    """The newest ``limit`` runs of ``dag_id`` (only those in ``state`` if given)."""
    if limit < 1:
        raise InvalidInputError(f"the number of runs must be at least 1, not {limit}")
    with transaction(session_factory, readonly=True) as session:
        if dag_store.get(session, dag_id) is None:
            raise _not_found(session, dag_id)
        states = None if state is None else [state]
        return run_store.find_dag_runs(session, dag_id, states=states, limit=limit)


def task_instances(
    session_factory: sessionmaker[Session], dag_id: str, run_id: str
) -> list[TaskInstance]:
    """The task instances of one run, in the DAG's dependency order (tasks the DAG no
    longer has come last, by id)."""
    with transaction(session_factory, readonly=True) as session:
        run = require_run(session, dag_id, run_id)
        rows = ti_store.list_for_run(session, dag_id, run_id)
        version = (
            dag_store.get_version(session, run.dag_version_id)
            if run.dag_version_id is not None
            else dag_store.latest_version(session, dag_id)
        )
    if version is None:
        return rows
    order = {t: i for i, t in enumerate(SerializedDag.from_dict(version.data).topological_order())}
    return sorted(rows, key=lambda ti: (order.get(ti.task_id, len(order)), ti.task_id))


def require_ti(session: Session, dag_id: str, run_id: str, task_id: str) -> TaskInstance:
    """The task instance (the unmapped one), or NotFoundError naming what is missing."""
    require_run(session, dag_id, run_id)
    ti = ti_store.get(session, TIKey(dag_id, run_id, task_id))
    if ti is None:
        message = f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}"
        known = [t.task_id for t in ti_store.list_for_run(session, dag_id, run_id)]
        close = difflib.get_close_matches(task_id, known, n=3)
        if close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        raise TaskNotFound(message)
    return ti


def find_try_log(
    session_factory: sessionmaker[Session],
    log_folder: Path,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None = None,
    *,
    wait: bool = False,
) -> TryLog:
    """The log of try ``try_number`` (default: the latest) of a task instance: its file on
    this host, or else what its worker shipped to the database.

    :class:`NotFoundError` says why when there is no log to show: the task has not started,
    there is no such try, or its log is nowhere. With ``wait``, a try that is queued or
    running is returned even before its log exists (the caller waits for it to appear).
    """
    where = f"task {task_id!r} of run {run_id!r} of DAG {dag_id!r}"
    with transaction(session_factory, readonly=True) as session:
        ti = require_ti(session, dag_id, run_id, task_id)
        latest = ti.try_number
        if try_number is None:
            if latest < 1:
                raise NotFoundError(
                    f"{where} has not started yet (state {ti.state}): it has no log"
                )
            try_number = latest
        elif try_number < 1:
            raise InvalidInputError(f"a try number starts at 1, not {try_number}")
        elif try_number > latest:
            tries = (
                "no try yet" if latest < 1 else f"tries 1 to {latest}" if latest > 1 else "1 try"
            )
            raise NotFoundError(f"{where} has had {tries}: there is no try {try_number}")
        key = TIKey(dag_id, run_id, task_id, ti.map_index)
        path = try_log_path(log_folder, dag_id, run_id, task_id, try_number, ti.map_index)
        if path.is_file():
            source = "file"
        elif log_store.stored_size(session, key, try_number) is not None:
            source = "database"
        else:
            source = ""
    live = try_number == latest and ti.state in LIVE_STATES
    if not source and not (live and wait):
        if live:
            raise NotFoundError(
                f"try {try_number} of {where} is {ti.state} and has written no log yet"
            )
        raise NotFoundError(
            f"try {try_number} of {where} left no log (expected at {path}, and none was "
            "shipped to the database)"
        )
    return TryLog(
        dag_id, run_id, task_id, try_number, path, live, ti.map_index, source, session_factory
    )


def try_is_live(session_factory: sessionmaker[Session], log: TryLog) -> bool:
    """Whether the try of ``log`` is still queued or running (its log may still grow)."""
    with transaction(session_factory, readonly=True) as session:
        ti = ti_store.get(session, log.key)
    return ti is not None and ti.try_number == log.try_number and ti.state in LIVE_STATES


def get_task_instance(
    session_factory: sessionmaker[Session], dag_id: str, run_id: str, task_id: str
) -> TaskInstance:
    with transaction(session_factory, readonly=True) as session:
        return require_ti(session, dag_id, run_id, task_id)


def try_history(
    session_factory: sessionmaker[Session], dag_id: str, run_id: str, task_id: str
) -> list[TaskInstanceHistory]:
    """The finished tries of a task instance, first try first (a try still queued or
    running has no history row yet: the task instance itself describes it)."""
    with transaction(session_factory, readonly=True) as session:
        ti = require_ti(session, dag_id, run_id, task_id)
        return ti_store.history(session, TIKey(dag_id, run_id, task_id, ti.map_index))


@dataclass(frozen=True)
class LogChunk:
    """A piece of a try's log, from the offset asked for."""

    content: str
    #: where the next read starts: pass it back to get only what came after
    next_offset: int
    #: the try is queued or running: its log may still grow
    live: bool
    #: the file already holds more past ``next_offset`` (the chunk was capped): ask again
    more: bool = False


def read_log_chunk(log: TryLog, offset: int = 0, max_bytes: int = 1_000_000) -> LogChunk:
    """Up to ``max_bytes`` of ``log`` from byte ``offset``, decoded as UTF-8 (invalid bytes
    replaced): from its file when the file is on this host, or else from what its worker
    shipped to the database. A live tail passes each answer's ``next_offset`` to the next call and gets
    only the new text. ``log.live`` should be fresh: find the log (which reads the try's
    state) before reading, so a try that has ended has written everything read here."""
    if offset < 0:
        raise InvalidInputError(f"a log offset cannot be negative ({offset})")
    if max_bytes < 1:
        raise InvalidInputError(f"a log chunk must allow at least 1 byte, not {max_bytes}")
    try:
        with log.path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            data = b""
            if offset < size:  # (seeking far past the end can fail outright)
                file.seek(offset)
                data = file.read(max_bytes)
    except FileNotFoundError:  # not on this host: shipped, or a queued try not written yet
        return _read_shipped(log, offset, max_bytes)
    end = offset + len(data)
    more = end < size
    if log.live or more:
        # A character cut by the chunk's end or still being written comes whole next time.
        whole = whole_characters(data)
        if whole > 0 or not more:  # (a chunk too small for one character still moves on)
            data = data[:whole]
    return LogChunk(data.decode("utf-8", errors="replace"), offset + len(data), log.live, more)


def _read_shipped(log: TryLog, offset: int, max_bytes: int) -> LogChunk:
    if log.session_factory is None:
        return LogChunk("", offset, log.live)
    with transaction(log.session_factory, readonly=True) as session:
        stored = log_store.read_chunks(session, log.key, log.try_number, offset, max_bytes)
    # (shipped chunks hold whole characters: only a cut at max_bytes needed care, and got it)
    return LogChunk(stored.content, stored.next_offset, log.live, stored.next_offset < stored.size)


def log_size(log: TryLog) -> int:
    """How many bytes the log holds so far (in its file here, or else shipped)."""
    try:
        return log.path.stat().st_size
    except FileNotFoundError:
        if log.session_factory is None:
            return 0
    with transaction(log.session_factory, readonly=True) as session:
        return log_store.stored_size(session, log.key, log.try_number) or 0
