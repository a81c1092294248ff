"""Step 5 of a scheduler pass, the critical section: scheduled task instances go to
``queued`` within their pool's open slots, their run's ``max_active_tasks`` and
``scheduler.parallelism``. The caller owns the transaction and, after it commits, hands
the workloads to the executor.

The limits count what is queued and running across the installation, so they hold only if
one scheduler at a time counts and queues: on PostgreSQL the step runs inside a lock that
serializes it across schedulers (:func:`slipstream.store.queue.scheduled_to_queue`), as
Airflow's critical section does. A scheduler that finds another inside skips the step and
tries again a moment later (:data:`RETRY_SECONDS`), instead of waiting while it holds the
rows it has just evaluated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from slipstream.config import Config
from slipstream.decisions import QueueCandidate, select_to_queue
from slipstream.executors.base import Workload
from slipstream.scheduler.dag_cache import DagCache
from slipstream.store import pools as pool_store
from slipstream.store import queue as queue_store
from slipstream.store.queue import TryRef

log = logging.getLogger(__name__)

RunKey = tuple[str, str]
#: how soon a scheduler that found the critical section taken tries again; the holder
#: queues what it can see, so this only bounds the wait for work it could not see yet
RETRY_SECONDS = 0.05


@dataclass
class Queued:
    """What the step did."""

    workloads: list[Workload] = field(default_factory=list)
    #: scheduled tasks were left for want of room: look again when room is freed
    pending: bool = False
    #: another scheduler was queueing: nothing was done; try again in RETRY_SECONDS
    busy: bool = False


def workload_of(ref: TryRef) -> Workload:
    return Workload(
        dag_id=ref.dag_id,
        run_id=ref.run_id,
        task_id=ref.task_id,
        try_number=ref.try_number,
        map_index=ref.map_index,
        queue=ref.queue,
        priority_weight=ref.priority_weight,
    )


def queue_scheduled(
    session: Session, dags: DagCache, config: Config, now: datetime, warned_pools: set[str]
) -> Queued:
    """Queue scheduled tries, highest ``priority_weight`` first (then the oldest run), within
    every limit (:func:`slipstream.decisions.select_to_queue`). ``warned_pools`` remembers
    the missing pools already logged."""
    parallelism = config.scheduler.parallelism
    candidates = queue_store.scheduled_to_queue(session, limit=max(parallelism * 4, 64))
    if candidates is None:
        return Queued(pending=True, busy=True)
    if not candidates:
        return Queued()
    # Counted inside the critical section: every scheduler's committed queueing is in it.
    usage = queue_store.in_flight(session)
    open_total = parallelism - usage.total
    if open_total <= 0:
        return Queued(pending=True)
    pool_open = {
        name: slots - usage.pool_slots.get(name, 0)
        for name, slots in pool_store.slot_counts(session).items()
    }
    run_open: dict[RunKey, int] = {}
    for c in candidates:
        key = (c.ref.dag_id, c.ref.run_id)
        if key not in run_open:
            dag = dags.get(session, c.dag_version_id) if c.dag_version_id else None
            limit = (dag.max_active_tasks if dag else None) or (
                config.core.max_active_tasks_per_dag
            )
            run_open[key] = limit - usage.by_run.get(key, 0)
    by_id = {c.ref.ti_id: c.ref for c in candidates}
    chosen = select_to_queue(
        [
            QueueCandidate(
                ti_id=c.ref.ti_id,
                run=(c.ref.dag_id, c.ref.run_id),
                pool=c.ref.pool,
                pool_slots=c.ref.pool_slots,
                priority_weight=c.ref.priority_weight,
                order=(c.logical_date.isoformat() if c.logical_date else "",),
            )
            for c in candidates
        ],
        pool_open=pool_open,
        run_open=run_open,
        parallel_open=open_total,
    )
    for pool in sorted({c.ref.pool for c in candidates} - pool_open.keys() - warned_pools):
        log.warning("tasks wait for pool %r, which does not exist (`slipstream pools set`)", pool)
        warned_pools.add(pool)
    result = Queued()
    for candidate in chosen:
        queued = queue_store.queue_try(session, by_id[candidate.ti_id], now)
        if queued is not None:
            result.workloads.append(workload_of(queued))
    return result
