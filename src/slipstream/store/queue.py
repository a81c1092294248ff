"""The task instance rows as a work queue: queue, claim, heartbeat, and find lost tries.

A row in state ``queued`` is a message waiting for a worker. Every move is a compare-and-set
on (state, try number), so two workers can never both claim a try, and a worker that lost
its try (it was presumed dead, or the try was cleared) learns so from its next write instead
of overwriting the newer truth. The caller owns the transaction.

Several schedulers may share a PostgreSQL database: the rows each one writes are read
``FOR UPDATE SKIP LOCKED`` (another scheduler's rows are passed over, never waited for, so
no two schedulers deadlock), and queueing itself is serialized by
:func:`enter_queueing_section`, so limits counted inside it hold across all of them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from slipstream.states import DagRunState, DagRunType, TaskInstanceState
from slipstream.store.models import Dag, DagRun, TaskInstance
from slipstream.store.scheduling import BACKFILL_TRIGGER
from slipstream.store.xcoms import clear_xcoms

_S = TaskInstanceState
#: states that hold a slot: queued, running, and a cleared try its worker is still stopping
IN_FLIGHT = (_S.QUEUED.value, _S.RUNNING.value, _S.RESTARTING.value)


@dataclass(frozen=True)
class TryRef:
    """A try as the queue knows it."""

    ti_id: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    queue: str
    pool: str
    pool_slots: int
    priority_weight: int
    max_tries: int = 0


# --- the scheduler's side ---------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A scheduled try with what the queueing decision needs of its run."""

    ref: TryRef
    logical_date: datetime | None
    dag_version_id: int | None


@dataclass(frozen=True)
class InFlight:
    """Queued and running task instances, counted the ways the limits need."""

    total: int
    by_run: dict[tuple[str, str], int]
    pool_slots: dict[str, int]


_TI = cast(Table, TaskInstance.__table__)
_RUN = cast(Table, DagRun.__table__)
_DAG = cast(Table, Dag.__table__)

_REF_COLUMNS = (
    TaskInstance.id,
    TaskInstance.dag_id,
    TaskInstance.run_id,
    TaskInstance.task_id,
    TaskInstance.map_index,
    TaskInstance.try_number,
    TaskInstance.queue,
    TaskInstance.pool,
    TaskInstance.pool_slots,
    TaskInstance.priority_weight,
    TaskInstance.max_tries,
)


_SCHEDULED = (
    select(*(_TI.c[c.key] for c in _REF_COLUMNS), _RUN.c.logical_date, _RUN.c.dag_version_id)
    .join(_RUN, (_RUN.c.dag_id == _TI.c.dag_id) & (_RUN.c.run_id == _TI.c.run_id))
    .join(_DAG, _DAG.c.dag_id == _TI.c.dag_id)
    .where(
        _TI.c.state == _S.SCHEDULED.value,
        _RUN.c.state == DagRunState.RUNNING.value,
        _DAG.c.is_paused.is_(False)
        | (_RUN.c.run_type == DagRunType.BACKFILL.value)
        | (_RUN.c.triggered_by == BACKFILL_TRIGGER),
    )
    .order_by(_TI.c.priority_weight.desc(), _RUN.c.logical_date, _TI.c.id)
    .limit(bindparam("limit"))
)
_CLAIMABLE = (
    select(*(_TI.c[c.key] for c in _REF_COLUMNS))
    .where(_TI.c.state == _S.QUEUED.value, _TI.c.queue.in_(bindparam("queues", expanding=True)))
    .order_by(_TI.c.priority_weight.desc(), _TI.c.queued_at, _TI.c.id)
    .limit(bindparam("limit"))
)
_CLAIMABLE_PG = _CLAIMABLE.with_for_update(skip_locked=True)
# Locks only the task instances (not their runs or DAGs, which other steps lock), skipping
# those a concurrent writer holds: a clear, a run's end. SQLite ignores FOR UPDATE.
_SCHEDULED_LOCKED = _SCHEDULED.with_for_update(of=_TI, skip_locked=True)
_IN_FLIGHT = (
    select(_TI.c.dag_id, _TI.c.run_id, _TI.c.pool, func.count(), func.sum(_TI.c.pool_slots))
    .where(_TI.c.state.in_(IN_FLIGHT))
    .group_by(_TI.c.dag_id, _TI.c.run_id, _TI.c.pool)
)


def scheduled(session: Session, limit: int, *, lock: bool = False) -> list[Candidate]:
    """Scheduled tries of running runs, best first (plain columns: this runs every pass).

    A paused DAG's tries wait, as in Airflow, except a backfill's. With ``lock`` the rows
    are locked for queueing; rows another transaction holds are left out."""
    query = _SCHEDULED_LOCKED if lock else _SCHEDULED
    return [
        Candidate(_ref_from_row(row), row.logical_date, row.dag_version_id)
        for row in session.connection().execute(query, {"limit": limit})
    ]


#: the key of the queueing lock (the bytes of "slipqueu"): one per database, like all
#: PostgreSQL advisory locks, so installations sharing a server never contend
QUEUEING_LOCK_KEY = int.from_bytes(b"slipqueu", "big")


def enter_queueing_section(session: Session) -> bool:
    """Take the lock that lets one scheduler at a time queue, until the transaction ends;
    False, at once, if another scheduler holds it (try again soon).

    On PostgreSQL a transaction-scoped advisory lock: it is released by the commit that
    makes the queueing visible, so the next holder counts what this one queued. On SQLite
    the transaction holds the write lock already (BEGIN IMMEDIATE): nothing to take."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    got = session.connection().scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": QUEUEING_LOCK_KEY}
    )
    return bool(got)


def scheduled_to_queue(session: Session, limit: int) -> list[Candidate] | None:
    """The scheduled tries to consider for queueing, best first, read inside the queueing
    section; None if another scheduler is in it (nothing read: try again soon).

    The section is entered only when something is scheduled, so that a scheduler with
    nothing to queue never keeps another from queueing."""
    if session.get_bind().dialect.name != "postgresql":
        return scheduled(session, limit)  # one scheduler, and it holds the write lock
    if not scheduled(session, 1):
        return []
    if not enter_queueing_section(session):
        return None
    # Read again inside the section, in a fresh snapshot (READ COMMITTED): what the previous
    # holder queued is visible now, and is no longer scheduled.
    return scheduled(session, limit, lock=True)


def _ref_from_row(row: Any) -> TryRef:
    return TryRef(
        ti_id=row.id,
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        try_number=row.try_number,
        queue=row.queue,
        pool=row.pool,
        pool_slots=row.pool_slots,
        priority_weight=row.priority_weight,
        max_tries=row.max_tries,
    )


def in_flight(session: Session) -> InFlight:
    total = 0
    by_run: dict[tuple[str, str], int] = {}
    pool_slots: dict[str, int] = {}
    for dag_id, run_id, pool, n, slots in session.connection().execute(_IN_FLIGHT):
        total += int(n)
        by_run[(dag_id, run_id)] = by_run.get((dag_id, run_id), 0) + int(n)
        pool_slots[pool] = pool_slots.get(pool, 0) + int(slots or 0)
    return InFlight(total, by_run, pool_slots)


# Built once, run on the Core connection: these run for every try (see task_instances).
_BY_ID_AND_TRY = (_TI.c.id == bindparam("k_id")) & (_TI.c.try_number == bindparam("k_try_number"))
_QUEUE = (
    update(_TI)
    .where(_BY_ID_AND_TRY, _TI.c.state == _S.SCHEDULED.value)
    .values(
        state=_S.QUEUED.value,
        try_number=bindparam("v_try_number"),
        queued_at=bindparam("v_now"),
        updated_at=bindparam("v_now"),
        hostname=None,
        pid=None,
        worker_job_id=None,
    )
)
_CLAIM = (
    update(_TI)
    .where(_BY_ID_AND_TRY, _TI.c.state == _S.QUEUED.value)
    .values(
        state=_S.RUNNING.value,
        start_date=bindparam("v_now"),
        end_date=None,
        duration=None,
        next_retry_at=None,
        error=None,
        hostname=bindparam("v_hostname"),
        pid=bindparam("v_pid"),
        worker_job_id=bindparam("v_job_id"),
        last_heartbeat_at=bindparam("v_now"),
        updated_at=bindparam("v_now"),
    )
)
_HEARTBEAT = (
    update(_TI)
    .where(_BY_ID_AND_TRY, _TI.c.state == _S.RUNNING.value)
    .values(last_heartbeat_at=bindparam("v_now"))
)
_COUNT_QUEUED = select(func.count()).where(
    _TI.c.state == _S.QUEUED.value, _TI.c.queue.in_(bindparam("queues", expanding=True))
)


def queue_try(session: Session, ref: TryRef, now: datetime) -> TryRef | None:
    """scheduled → queued with the next try number; None if the row moved meanwhile."""
    result = session.connection().execute(
        _QUEUE,
        {
            "k_id": ref.ti_id,
            "k_try_number": ref.try_number,
            "v_try_number": ref.try_number + 1,
            "v_now": now,
        },
    )
    if result.rowcount != 1:
        return None
    return TryRef(**{**ref.__dict__, "try_number": ref.try_number + 1})


def running_past_heartbeat(
    session: Session, *, now: datetime, timeout: float, state: TaskInstanceState = _S.RUNNING
) -> list[TryRef]:
    """Tries in ``state`` (running, or restarting) whose worker has not heartbeat them for
    ``timeout`` seconds, locked in id order; a row another scheduler (or a late worker) is
    writing is left out — its writer acts on it, and a second verdict would be refused."""
    query = (
        select(TaskInstance)
        .where(
            TaskInstance.state == state.value,
            TaskInstance.last_heartbeat_at < now - timedelta(seconds=timeout),
        )
        .order_by(TaskInstance.id)
        .with_for_update(skip_locked=True)
    )
    return [_ref_from_row(row) for row in session.scalars(query)]


# --- the worker's side ------------------------------------------------------------------


def count_queued(session: Session, queues: Collection[str]) -> int:
    return int(session.connection().scalar(_COUNT_QUEUED, {"queues": list(queues)}) or 0)


def claim(
    session: Session,
    *,
    queues: Collection[str],
    limit: int,
    job_id: int,
    hostname: str,
    pid: int,
    now: datetime,
) -> list[TryRef]:
    """Claim up to ``limit`` queued tries of ``queues``, best first: queued → running.

    On PostgreSQL the candidates are locked with SKIP LOCKED, so workers claiming at once
    take different rows instead of queueing behind each other; everywhere the claim itself
    is a compare-and-set, so a row taken by another worker meanwhile is simply passed over.
    """
    if limit < 1:
        return []
    query = _CLAIMABLE_PG if session.get_bind().dialect.name == "postgresql" else _CLAIMABLE
    rows = session.connection().execute(query, {"queues": list(queues), "limit": limit})
    refs = [_ref_from_row(row) for row in rows]
    return [ref for ref in refs if _claim(session, ref, job_id, hostname, pid, now)]


_EXACT = select(*(_TI.c[c.key] for c in _REF_COLUMNS)).where(
    _TI.c.dag_id == bindparam("dag_id"),
    _TI.c.run_id == bindparam("run_id"),
    _TI.c.task_id == bindparam("task_id"),
    _TI.c.map_index == bindparam("map_index"),
    _TI.c.try_number == bindparam("try_number"),
    _TI.c.state == _S.QUEUED.value,
)


def claim_try(
    session: Session,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int,
    job_id: int,
    hostname: str,
    pid: int,
    now: datetime,
) -> TryRef | None:
    """Claim the one try a message names (queued under ``try_number`` → running), or None.

    A message delivered twice, or late, names a try that is already running, ended, or was
    queued again under a newer number: the compare-and-set matches nothing and the caller
    runs nothing. Its queue is not checked: whoever delivered the message chose the worker.
    """
    row = (
        session.connection()
        .execute(
            _EXACT,
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "task_id": task_id,
                "map_index": map_index,
                "try_number": try_number,
            },
        )
        .first()
    )
    if row is None:
        return None
    ref = _ref_from_row(row)
    return ref if _claim(session, ref, job_id, hostname, pid, now) else None


def _claim(
    session: Session, ref: TryRef, job_id: int, hostname: str, pid: int, now: datetime
) -> bool:
    result = session.connection().execute(
        _CLAIM,
        {
            "k_id": ref.ti_id,
            "k_try_number": ref.try_number,
            "v_now": now,
            "v_hostname": hostname,
            "v_pid": pid,
            "v_job_id": job_id,
        },
    )
    if result.rowcount != 1:
        return False
    if ref.try_number > 1:
        # A new try starts from nothing: what an earlier try pushed is gone. (A first try
        # has nothing to clear: its run was created without XComs.)
        clear_xcoms(
            session,
            dag_id=ref.dag_id,
            run_id=ref.run_id,
            task_id=ref.task_id,
            map_index=ref.map_index,
        )
    return True


def heartbeat(session: Session, tries: Iterable[tuple[int, int]], now: datetime) -> list[int]:
    """Heartbeat running tries given as (ti_id, try_number); returns the ids no longer
    running under that try number: the worker has lost them and must stop them."""
    conn = session.connection()
    lost = []
    for ti_id, try_number in tries:
        result = conn.execute(_HEARTBEAT, {"k_id": ti_id, "k_try_number": try_number, "v_now": now})
        if result.rowcount != 1:
            lost.append(ti_id)
    return lost


def release_restarting(session: Session, ti_id: int, try_number: int, now: datetime) -> bool:
    """restarting → none once the cleared try is stopped (by its worker, or presumed dead),
    if the row is still at that try: the task may now run again."""
    result = session.connection().execute(
        update(_TI)
        .where(
            _TI.c.id == ti_id,
            _TI.c.try_number == try_number,
            _TI.c.state == _S.RESTARTING.value,
        )
        .values(state=_S.NONE.value, updated_at=now)
    )
    return result.rowcount == 1
