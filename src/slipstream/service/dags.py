"""DAG actions shared by the CLI, the REST API and the UI: parse, list, show, next runs.

Everything here reads the serialized DAGs in the database; only :func:`reserialize` (and
:func:`ensure_parsed`) run the DAG processor, which imports user code in child processes.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config
from slipstream.errors import DagNotFound, InvalidInputError
from slipstream.serialization import SerializedDag
from slipstream.store import dags as store
from slipstream.store import import_errors
from slipstream.store.db import transaction
from slipstream.store.models import Dag, ImportError_
from slipstream.timetables import DagRunInfo, TimeRestriction, next_run_infos

if TYPE_CHECKING:
    from slipstream.dag_processor import FileResult, Progress

_T = TypeVar("_T")


class NoScheduleError(InvalidInputError):
    """The DAG has no schedule, so it has no next runs (not a failure for ``next-runs``)."""


@dataclass(frozen=True)
class ReserializeResult:
    results: list[FileResult]

    @property
    def files(self) -> int:
        return len(self.results)

    @property
    def dags(self) -> int:
        return sum(len(r.dag_ids) for r in self.results)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r.error is not None)


def reserialize(
    config: Config, session_factory: sessionmaker[Session], progress: Progress | None = None
) -> ReserializeResult:
    """Parse every DAG file now and store the results."""
    # Imported here, not at the top: the DAG processor (the parser, the SDK's operators) is
    # only needed by the commands that parse, and every CLI call pays for what it imports.
    from slipstream.dag_processor import DagProcessor

    return ReserializeResult(DagProcessor(config, session_factory).process_folder(progress))


def ensure_parsed(config: Config, session_factory: sessionmaker[Session]) -> bool:
    """Run the processor when the database has never seen a DAG file (a fresh install).

    Returns True if it ran.
    """
    with transaction(session_factory) as session:
        seen = store.count(session) > 0 or import_errors.count(session) > 0
    if seen:
        return False
    reserialize(config, session_factory)
    return True


def list_dags(session_factory: sessionmaker[Session], include_inactive: bool = False) -> list[Dag]:
    with transaction(session_factory) as session:
        return store.list_dags(session, include_inactive=include_inactive)


def get_dag(session_factory: sessionmaker[Session], dag_id: str) -> SerializedDag:
    """The latest serialized form of ``dag_id``; :class:`DagNotFound` names close ids."""
    with transaction(session_factory) as session:
        data = store.get_serialized(session, dag_id)
        if data is None:
            raise _not_found(session, dag_id)
    return SerializedDag.from_dict(data)


def _not_found(session: Session, dag_id: str) -> DagNotFound:
    known = store.all_dag_ids(session)
    message = f"DAG {dag_id!r} does not exist"
    close = difflib.get_close_matches(dag_id, known, n=3)
    if close:
        message += f"; did you mean {', '.join(repr(c) for c in close)}?"
    elif import_errors.count(session):
        message += " (some DAG files failed to import: see `slipstream dags list-import-errors`)"
    return DagNotFound(message)


def list_import_errors(session_factory: sessionmaker[Session]) -> list[ImportError_]:
    with transaction(session_factory) as session:
        return import_errors.list_all(session)


def next_runs(
    session_factory: sessionmaker[Session], dag_id: str, n: int, now: datetime
) -> list[DagRunInfo]:
    """The next ``n`` scheduled runs of ``dag_id`` after its newest scheduled run, at ``now``."""
    if n < 1:
        raise InvalidInputError(f"the number of runs must be at least 1, not {n}")
    dag = get_dag(session_factory, dag_id)
    timetable = dag.timetable
    if not timetable.can_be_scheduled:
        raise NoScheduleError(f"DAG {dag_id!r} has no schedule: it runs only when triggered")
    with transaction(session_factory) as session:
        last = store.last_automated_interval(session, dag_id)
    restriction = TimeRestriction(dag.start_date, dag.end_date, dag.catchup)
    return next_run_infos(timetable, restriction, now, n, last_automated_data_interval=last)


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page of a longer list, and how many items the whole list has."""

    items: list[_T]
    total: int


def find_dags(
    session_factory: sessionmaker[Session],
    *,
    search: str | None = None,
    tags: Collection[str] = (),
    paused: bool | None = None,
    include_inactive: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Page[Dag]:
    if limit < 1 or offset < 0:
        raise InvalidInputError("limit must be at least 1 and offset at least 0")
    with transaction(session_factory, readonly=True) as session:
        rows, total = store.find(
            session,
            search=search,
            tags=tags,
            paused=paused,
            include_inactive=include_inactive,
            limit=limit,
            offset=offset,
        )
    return Page(rows, total)


def get_dag_row(session_factory: sessionmaker[Session], dag_id: str) -> Dag:
    """The ``dag`` row of ``dag_id`` (paused, schedule, next run); DagNotFound names close ids."""
    with transaction(session_factory, readonly=True) as session:
        row = store.get(session, dag_id)
        if row is None:
            raise _not_found(session, dag_id)
        return row


def all_tags(session_factory: sessionmaker[Session]) -> list[str]:
    with transaction(session_factory, readonly=True) as session:
        return store.all_tags(session)
