"""Backfill: queue the runs a DAG's schedule owes for a range of past logical dates.

:func:`backfill_dag` works out the runs (the timetable's intervals whose logical date lies in
the range and which have ended by ``now``), decides for each whether to create it, run it
again or leave the run that exists, and writes the whole decision in one transaction. The
scheduler, which may be down at the time, starts the queued runs (a paused DAG's backfill
runs too) within the DAG's ``max_active_runs``. :func:`watch` follows them until they end.

The decisions (:func:`backfill_infos`, :func:`plan_backfill`) are plain functions of values
and ``now``; the rest reads and writes the database through the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import ensure_utc
from slipstream.errors import AlreadyExistsError, DagDefinitionError, DagNotFound, InvalidInputError
from slipstream.executors.local import notify_scheduler
from slipstream.serialization import SerializedDag
from slipstream.service.dags import _not_found
from slipstream.states import DagRunState, DagRunType
from slipstream.store import audit, clearing, jobs
from slipstream.store import dags as dag_store
from slipstream.store import runs as run_store
from slipstream.store.db import transaction
from slipstream.store.models import DagRun
from slipstream.timetables import (
    DagRunInfo,
    DeltaDataIntervalTimetable,
    OnceTimetable,
    TimeRestriction,
    Timetable,
    parse_timezone,
)

#: Most runs one backfill may hold: a typo in a range (a minutely DAG over ten years) is
#: refused instead of queueing millions of runs.
MAX_RUNS = 10_000

#: ``triggered_by`` of the runs a backfill creates or runs again (Airflow's word for it).
BACKFILL_TRIGGER = "backfill"

# Where a timedelta schedule's grid is anchored when the DAG has no start_date, as the
# timetable itself does.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# run ids per query when reading states: well under every database's limit on parameters
_CHUNK = 500

_FINISHED = frozenset({DagRunState.SUCCESS.value, DagRunState.FAILED.value})


class ReprocessBehavior(StrEnum):
    """Which finished runs a backfill runs again (runs still queued or running never)."""

    NONE = "none"  #: none: only runs that do not exist are created
    FAILED = "failed"  #: failed runs
    COMPLETED = "completed"  #: failed and successful runs


class BackfillAction(StrEnum):
    CREATE = "create"  #: no run at that logical date: a new one is queued
    RERUN = "rerun"  #: the finished run there is cleared and queued again
    SKIP_EXISTS = "skip-exists"  #: a finished run there is kept, as the behaviour asks
    SKIP_ACTIVE = "skip-active"  #: a run there is queued or running: it carries on


class PlannedRun(NamedTuple):
    logical_date: datetime
    action: BackfillAction


# --- decisions ---------------------------------------------------------------------------


def plan_backfill(
    infos: Iterable[DagRunInfo],
    existing: Mapping[datetime, str],
    reprocess: ReprocessBehavior,
    *,
    run_backwards: bool = False,
) -> list[PlannedRun]:
    """What to do at each logical date of ``infos``, given the state of the run that exists
    there (``existing``: logical date -> run state), oldest first (newest first when
    ``run_backwards``)."""
    plan = []
    for info in infos:
        state = existing.get(info.logical_date)
        if state is None:
            action = BackfillAction.CREATE
        elif state not in _FINISHED:  # queued, running, or a state this version does not know
            action = BackfillAction.SKIP_ACTIVE
        elif reprocess == ReprocessBehavior.COMPLETED or (
            reprocess == ReprocessBehavior.FAILED and state == DagRunState.FAILED.value
        ):
            action = BackfillAction.RERUN
        else:
            action = BackfillAction.SKIP_EXISTS
        plan.append(PlannedRun(info.logical_date, action))
    plan.sort(key=lambda p: p.logical_date, reverse=run_backwards)
    return plan


def range_infos(
    timetable: Timetable, start: datetime, end: datetime, *, anchor: datetime | None
) -> Iterator[DagRunInfo]:
    """The timetable's runs whose logical date lies in ``[start, end]``, oldest first.

    ``anchor`` is the DAG's start_date: a timedelta schedule's grid starts there (so a
    backfill lands on the dates the scheduler would have used, whatever ``start`` is), and
    ``@once`` runs only there. A schedule-less timetable has no runs.
    """
    start, end = ensure_utc(start), ensure_utc(end)
    if isinstance(timetable, OnceTimetable):
        if anchor is None or not start <= ensure_utc(anchor) <= end:
            return
        earliest = ensure_utc(anchor)
    elif isinstance(timetable, DeltaDataIntervalTimetable):
        origin = ensure_utc(anchor) if anchor is not None else _EPOCH
        steps = -((origin - start) // timetable.delta)  # ceil((start - origin) / delta)
        earliest = origin + steps * timetable.delta
    else:
        earliest = start
    restriction = TimeRestriction(earliest, end, catchup=True)
    last = None
    while True:
        # With catchup the timetable ignores ``now``: every interval from earliest counts.
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction, now=end
        )
        # The second test guards against a timetable that does not move forward.
        if info is None or (last is not None and info.data_interval == last):
            return
        if info.logical_date > end:
            return
        if info.logical_date >= start:
            yield info
        last = info.data_interval


def backfill_infos(
    timetable: Timetable,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    anchor: datetime | None,
    limit: int = MAX_RUNS,
) -> list[DagRunInfo]:
    """The runs a backfill of ``[start, end]`` covers: those of :func:`range_infos` whose
    interval has ended by ``now`` (later ones are the scheduler's to run, as in Airflow).

    More than ``limit`` runs is an :class:`InvalidInputError`.
    """
    now = ensure_utc(now)
    infos: list[DagRunInfo] = []
    for info in range_infos(timetable, start, end, anchor=anchor):
        if info.run_after > now:
            break
        if len(infos) == limit:
            raise InvalidInputError(
                f"the range holds more than {limit} runs: backfill it in shorter ranges"
            )
        infos.append(info)
    return infos


def backfill_run_id(logical_date: datetime) -> str:
    return f"backfill__{ensure_utc(logical_date).isoformat()}"


def _pick(rows: Iterable[tuple[int, datetime, str, str]]) -> dict[datetime, tuple[str, str]]:
    """For each logical date, the run that speaks for it: one not finished (queued, running)
    if there is one, as it must be left alone, else the newest. Rows: (id, date, run_id,
    state)."""
    chosen: dict[datetime, tuple[int, str, str]] = {}
    for row_id, logical_date, run_id, state in sorted(rows):
        current = chosen.get(logical_date)
        if current is None or current[2] in _FINISHED:
            chosen[logical_date] = (row_id, run_id, state)
    return {date: (run_id, state) for date, (_id, run_id, state) in chosen.items()}


# --- the service -------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillRun:
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    #: the new run's id, or the id of the run that exists at the logical date
    run_id: str
    action: BackfillAction
    #: the run's state after the backfill (for a dry run: now; None for one to create)
    state: str | None


@dataclass(frozen=True)
class BackfillResult:
    dag_id: str
    start_date: datetime
    end_date: datetime
    reprocess_behavior: ReprocessBehavior
    run_backwards: bool
    dry_run: bool
    is_paused: bool
    runs: list[BackfillRun]

    def count(self, action: BackfillAction) -> int:
        return sum(1 for r in self.runs if r.action == action)

    @property
    def queued_run_ids(self) -> list[str]:
        """The runs this backfill queued (created or run again), in its order."""
        queued = (BackfillAction.CREATE, BackfillAction.RERUN)
        return [r.run_id for r in self.runs if r.action in queued]


def backfill_dag(
    session_factory: sessionmaker[Session],
    dag_id: str,
    *,
    start_date: datetime,
    end_date: datetime,
    now: datetime,
    reprocess_behavior: ReprocessBehavior = ReprocessBehavior.NONE,
    conf: dict[str, Any] | None = None,
    run_backwards: bool = False,
    dry_run: bool = False,
    actor: str | None = None,
    database_url: str | None = None,
) -> BackfillResult:
    """Queue the runs of ``dag_id`` whose logical dates lie in ``[start_date, end_date]``
    (naive dates are in the DAG's time zone) and wake the scheduler. With ``dry_run`` only
    say what would be done. Everything is written in one transaction, or nothing is."""
    conf = dict(conf or {})
    with transaction(session_factory, readonly=dry_run) as session:
        row = dag_store.get(session, dag_id)
        version = dag_store.latest_version(session, dag_id)
        if row is None:
            raise _not_found(session, dag_id)
        if version is None or not row.is_active:
            raise DagNotFound(f"DAG {dag_id!r} is no longer defined by any DAG file")
        dag = SerializedDag.from_dict(version.data)
        start, end = _localize(start_date, dag), _localize(end_date, dag)
        infos = _infos(dag, start, end, now, run_backwards)
        dag.resolve_params(conf)  # InvalidInputError names the param; nothing is written
        existing = _existing_runs(session, dag_id, infos)
        plan = plan_backfill(
            infos,
            {date: state for date, (_run_id, state) in existing.items()},
            reprocess_behavior,
            run_backwards=run_backwards,
        )
        by_date = {info.logical_date: info for info in infos}
        runs = []
        for logical_date, action in plan:
            info = by_date[logical_date]
            there = existing.get(logical_date)
            run_id = there[0] if there else backfill_run_id(logical_date)
            state = there[1] if there else None
            if not dry_run and action == BackfillAction.CREATE:
                _create(session, dag, info, run_id, conf, version.id, now)
                state = DagRunState.QUEUED.value
            elif not dry_run and action == BackfillAction.RERUN:
                if _rerun(session, dag_id, run_id, version.id, now):
                    state = DagRunState.QUEUED.value
                else:  # it started again since it was read: it carries on by itself
                    action = BackfillAction.SKIP_ACTIVE
            interval = info.data_interval
            runs.append(
                BackfillRun(logical_date, interval.start, interval.end, run_id, action, state)
            )
        result = BackfillResult(
            dag_id=dag_id,
            start_date=start,
            end_date=end,
            reprocess_behavior=reprocess_behavior,
            run_backwards=run_backwards,
            dry_run=dry_run,
            is_paused=row.is_paused,
            runs=runs,
        )
        if not dry_run:
            audit.record(
                session,
                "dag.backfill",
                owner=actor,
                dag_id=dag_id,
                extra=_extra(result, conf),
                when=now,
            )
    if database_url and not dry_run and result.queued_run_ids:
        notify_scheduler(database_url)
    return result


def _localize(value: datetime, dag: SerializedDag) -> datetime:
    if value.tzinfo is None:
        try:
            value = value.replace(tzinfo=parse_timezone(dag.timezone))
        except DagDefinitionError:  # a zone this machine's tz database lacks: say it as is
            raise InvalidInputError(
                f"DAG {dag.dag_id!r} has time zone {dag.timezone!r}, unknown here: "
                "give the dates with a UTC offset"
            ) from None
    return ensure_utc(value)


def _infos(
    dag: SerializedDag, start: datetime, end: datetime, now: datetime, run_backwards: bool
) -> list[DagRunInfo]:
    if end < start:
        raise InvalidInputError(
            f"the end date {end.isoformat()} is before the start date {start.isoformat()}"
        )
    timetable = dag.timetable
    if not timetable.can_be_scheduled:
        raise InvalidInputError(f"DAG {dag.dag_id!r} has no schedule: a backfill needs one")
    if run_backwards:
        past = sorted(t.task_id for t in dag.task_dict.values() if t.depends_on_past)
        if past:
            raise InvalidInputError(
                f"DAG {dag.dag_id!r} cannot be backfilled backwards: its tasks "
                f"{', '.join(past)} depend on past runs (depends_on_past)"
            )
    infos = backfill_infos(timetable, start, end, now=now, anchor=dag.start_date)
    if infos:
        return infos
    span = f"between {start.isoformat()} and {end.isoformat()}"
    first = next(iter(range_infos(timetable, start, end, anchor=dag.start_date)), None)
    if first is not None:
        raise InvalidInputError(
            f"no run of DAG {dag.dag_id!r} {span} has ended yet: the first, at "
            f"{first.logical_date.isoformat()}, can start at {first.run_after.isoformat()}"
        )
    raise InvalidInputError(
        f"DAG {dag.dag_id!r} has no run {span} (schedule {dag.timetable_summary})"
    )


def _existing_runs(
    session: Session, dag_id: str, infos: Sequence[DagRunInfo]
) -> dict[datetime, tuple[str, str]]:
    """logical date -> (run id, state) of the run at each of ``infos``' logical dates."""
    wanted = {info.logical_date for info in infos}
    if not wanted:
        return {}
    rows = session.execute(
        select(DagRun.id, DagRun.logical_date, DagRun.run_id, DagRun.state).where(
            DagRun.dag_id == dag_id,
            DagRun.logical_date >= min(wanted),
            DagRun.logical_date <= max(wanted),
        )
    )
    return _pick(
        (row_id, date, run_id, state)
        for row_id, date, run_id, state in rows
        if date is not None and date in wanted
    )


def _create(
    session: Session,
    dag: SerializedDag,
    info: DagRunInfo,
    run_id: str,
    conf: dict[str, Any],
    version_id: int,
    now: datetime,
) -> None:
    try:
        run_store.create_dag_run(
            session,
            dag_id=dag.dag_id,
            run_id=run_id,
            run_type=DagRunType.BACKFILL.value,
            logical_date=info.logical_date,
            data_interval=(info.data_interval.start, info.data_interval.end),
            run_after=info.run_after,
            conf=conf,
            tasks=run_store.task_specs(dag),
            now=now,
            state=DagRunState.QUEUED,
            dag_version_id=version_id,
            triggered_by=BACKFILL_TRIGGER,
        )
    except AlreadyExistsError:
        raise AlreadyExistsError(
            f"DAG {dag.dag_id!r} already has a run {run_id!r} at another logical date than "
            f"{info.logical_date.isoformat()}: delete it, then backfill again"
        ) from None


def _rerun(
    session: Session, dag_id: str, run_id: str, latest_version_id: int, now: datetime
) -> bool:
    """Queue the finished run again with every task instance cleared; False (and no change)
    if it is no longer finished. Its tasks' retries come from the DAG version the run was
    made with (the latest if that one is gone)."""
    if not clearing.requeue_finished_run(session, dag_id, run_id, now=now):
        return False
    run = run_store.get_dag_run(session, dag_id, run_id)
    assert run is not None  # just updated
    version = dag_store.get_version(session, run.dag_version_id) if run.dag_version_id else None
    if version is None:
        version = dag_store.get_version(session, latest_version_id)
        assert version is not None  # read in this transaction
        run.dag_version_id = version.id
    run.triggered_by = BACKFILL_TRIGGER
    dag = SerializedDag.from_dict(version.data)
    for ti in clearing.task_instances_of_runs(session, dag_id, [run_id]):
        task = dag.task_dict.get(ti.task_id)
        retries = task.retries if task is not None else max(ti.max_tries - ti.try_number, 0)
        clearing.clear_task_instance(session, ti.id, retries=retries, now=now)
    session.flush()
    return True


def _extra(result: BackfillResult, conf: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "start_date": result.start_date.isoformat(),
        "end_date": result.end_date.isoformat(),
        "reprocess_behavior": result.reprocess_behavior.value,
        "created": result.count(BackfillAction.CREATE),
        "rerun": result.count(BackfillAction.RERUN),
        "skipped": result.count(BackfillAction.SKIP_EXISTS)
        + result.count(BackfillAction.SKIP_ACTIVE),
    }
    if result.run_backwards:
        extra["run_backwards"] = True
    if conf:
        extra["conf"] = conf
    return extra


# --- following the runs ------------------------------------------------------------------


def scheduler_running(
    session_factory: sessionmaker[Session], *, now: datetime, timeout: float
) -> bool:
    """True if some scheduler heartbeat within ``timeout`` seconds."""
    with transaction(session_factory, readonly=True) as session:
        return bool(jobs.live(session, "scheduler", now=now, timeout=timeout))


#: the state :func:`run_states` gives a run that no longer exists (deleted meanwhile)
GONE = "deleted"


def run_states(
    session_factory: sessionmaker[Session], dag_id: str, run_ids: Collection[str]
) -> dict[str, str]:
    """run id -> state of the runs of ``dag_id``; :data:`GONE` for one that does not exist."""
    found: dict[str, str] = {}
    ids = list(run_ids)
    with transaction(session_factory, readonly=True) as session:
        for chunk in range(0, len(ids), _CHUNK):
            query = select(DagRun.run_id, DagRun.state).where(
                DagRun.dag_id == dag_id, DagRun.run_id.in_(ids[chunk : chunk + _CHUNK])
            )
            found.update({run_id: state for run_id, state in session.execute(query)})
    return {run_id: found.get(run_id, GONE) for run_id in run_ids}


def is_finished(state: str) -> bool:
    return state in _FINISHED or state == GONE


def watch(
    session_factory: sessionmaker[Session],
    dag_id: str,
    run_ids: Collection[str],
    *,
    poll_interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, str]]:
    """The states of ``run_ids`` (see :func:`run_states`) every ``poll_interval`` seconds,
    until every one has finished (the last snapshot says so)."""
    while True:
        states = run_states(session_factory, dag_id, run_ids)
        yield states
        if all(is_finished(s) for s in states.values()):
            return
        sleep(poll_interval)
