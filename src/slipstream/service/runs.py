"""Starting and steering DAG runs: trigger, pause, unpause. Shared by the CLI, the REST API
and the UI, so there is one way to do each.

These functions only write the database and wake the scheduler; the scheduler (which may
be down at the time) does the rest when it looks.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import ensure_utc
from slipstream.errors import AlreadyExistsError, DagNotFound, InvalidInputError
from slipstream.executors.local import notify_scheduler
from slipstream.serialization import SerializedDag
from slipstream.service.dags import Page, _not_found
from slipstream.service.inspection import require_run
from slipstream.states import DagRunState, DagRunType
from slipstream.store import audit
from slipstream.store import dags as dag_store
from slipstream.store import runs as run_store
from slipstream.store.db import transaction
from slipstream.store.models import DagRun
from slipstream.timetables.base import parse_timezone


@dataclass(frozen=True)
class TriggeredRun:
    dag_id: str
    run_id: str
    logical_date: datetime
    state: str
    conf: dict[str, Any]
    is_paused: bool


def trigger_dag(
    session_factory: sessionmaker[Session],
    dag_id: str,
    *,
    now: datetime,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    run_id: str | None = None,
    actor: str | None = None,
    database_url: str | None = None,
    triggered_by: str | None = None,
) -> TriggeredRun:
    """Create a queued manual run of ``dag_id`` (its params checked against ``conf``) and
    wake the scheduler. A paused DAG's run waits, queued, until the DAG is unpaused.

    ``triggered_by`` says where the trigger came from ("cli", "rest_api", "ui"); by default
    "cli" when an actor is given."""
    conf = dict(conf or {})
    triggered_by = triggered_by or ("cli" if actor else None)
    logical_date = ensure_utc(logical_date or now)
    run_id = run_id or run_store.manual_run_id(logical_date)
    if not run_id.strip():
        raise InvalidInputError("a run id cannot be empty")
    with transaction(session_factory) as session:
        row = dag_store.get(session, dag_id)
        version = dag_store.latest_version(session, dag_id)
        if row is None or version is None or not row.is_active:
            raise (
                _not_found(session, dag_id)
                if row is None
                else DagNotFound(f"DAG {dag_id!r} is no longer defined by any DAG file")
            )
        dag = SerializedDag.from_dict(version.data)
        dag.resolve_params(conf)  # InvalidInputError names the param; nothing is written
        try:
            interval = dag.timetable.infer_manual_data_interval(run_after=logical_date)
        except OverflowError:  # the schedule's interval would reach past year 1 or 9999
            raise _out_of_range(logical_date) from None
        try:
            run = run_store.create_dag_run(
                session,
                dag_id=dag_id,
                run_id=run_id,
                run_type=DagRunType.MANUAL.value,
                logical_date=logical_date,
                data_interval=(interval.start, interval.end),
                run_after=logical_date,
                conf=conf,
                tasks=run_store.task_specs(dag),
                now=now,
                state=DagRunState.QUEUED,
                dag_version_id=version.id,
                triggered_by=triggered_by,
            )
        except AlreadyExistsError:
            raise AlreadyExistsError(
                f"DAG {dag_id!r} already has a run {run_id!r}; pick another --run-id"
            ) from None
        audit.record(
            session,
            "dag.trigger",
            owner=actor,
            dag_id=dag_id,
            run_id=run_id,
            extra={"conf": conf, "via": triggered_by} if conf else {"via": triggered_by},
            when=now,
        )
        paused = row.is_paused
    if database_url:
        notify_scheduler(database_url)
    return TriggeredRun(dag_id, run.run_id, logical_date, run.state, conf, paused)


def set_paused(
    session_factory: sessionmaker[Session],
    dag_id: str,
    paused: bool,
    *,
    now: datetime,
    actor: str | None = None,
    database_url: str | None = None,
) -> None:
    """Pause or unpause ``dag_id``. Unpausing wakes the scheduler, which may owe it runs."""
    with transaction(session_factory) as session:
        if not dag_store.set_paused(session, dag_id, paused):
            raise _not_found(session, dag_id)
        audit.record(
            session, "dag.pause" if paused else "dag.unpause", owner=actor, dag_id=dag_id, when=now
        )
    if database_url and not paused:
        notify_scheduler(database_url)


def get_run(session_factory: sessionmaker[Session], dag_id: str, run_id: str) -> DagRun:
    with transaction(session_factory, readonly=True) as session:
        return require_run(session, dag_id, run_id)


def find_runs(
    session_factory: sessionmaker[Session],
    dag_id: str,
    *,
    states: Collection[str] | None = None,
    run_type: str | None = None,
    logical_date_from: datetime | None = None,
    logical_date_to: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[DagRun]:
    """One page of ``dag_id``'s runs, newest first, filtered by states, run type and an
    inclusive range of logical dates (aware datetimes)."""
    if limit < 1 or offset < 0:
        raise InvalidInputError("limit must be at least 1 and offset at least 0")
    with transaction(session_factory, readonly=True) as session:
        if dag_store.get(session, dag_id) is None:
            raise _not_found(session, dag_id)
        rows, total = run_store.page_dag_runs(
            session,
            dag_id,
            states=states,
            run_type=run_type,
            logical_date_from=logical_date_from,
            logical_date_to=logical_date_to,
            limit=limit,
            offset=offset,
        )
    return Page(rows, total)


def parse_date(text: str, option: str = "date") -> datetime:
    """An ISO date or datetime given as ``option``; a naive value stays naive (it is read in
    the DAG's time zone by whoever knows the DAG), or one sentence saying what is wrong."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{option} {text!r} is not an ISO date or datetime "
            "(e.g. 2024-01-31 or 2024-01-31T06:00:00+00:00)"
        ) from None


def dag_logical_date(
    session_factory: sessionmaker[Session], dag_id: str, value: datetime
) -> datetime:
    """``value`` in UTC; a naive value is a wall-clock time in ``dag_id``'s time zone."""
    if value.tzinfo is not None:
        return ensure_utc(value)
    with transaction(session_factory, readonly=True) as session:
        data = dag_store.get_serialized(session, dag_id)
        if data is None:
            raise _not_found(session, dag_id)
    zone = parse_timezone(SerializedDag.from_dict(data).timezone)
    try:
        return ensure_utc(value.replace(tzinfo=zone))
    except OverflowError:  # year 1 or 9999 moved across the calendar's edge by the zone
        raise _out_of_range(value) from None


def _out_of_range(value: datetime) -> InvalidInputError:
    return InvalidInputError(
        f"logical date {value.isoformat()} is too close to the calendar's limits "
        "(years 1 and 9999) for this DAG's schedule"
    )
