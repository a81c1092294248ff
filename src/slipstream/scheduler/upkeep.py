"""The scheduler's slow checks on work already handed out: tries whose worker stopped
heartbeating (step 3 of a pass), and tries left queued too long, whose message is sent
again. The caller owns the transaction.

Both are safe with several schedulers: the rows are read ``FOR UPDATE SKIP LOCKED`` (each
row is handled by one scheduler), and every write is a compare-and-set, so a second
verdict on the same try changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from slipstream.config import Config
from slipstream.decisions import retry_time, state_after_failure
from slipstream.executors.base import Workload
from slipstream.scheduler.dag_cache import DagCache
from slipstream.scheduler.queueing import workload_of
from slipstream.states import TaskInstanceState
from slipstream.store import queue as queue_store
from slipstream.store import resend as resend_store
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.resend import QueuedTry
from slipstream.store.task_instances import TIKey

log = logging.getLogger(__name__)

_S = TaskInstanceState
RunKey = tuple[str, str]


def fail_lost_tries(session: Session, dags: DagCache, config: Config, now: datetime) -> set[RunKey]:
    """End the running tries whose heartbeat is older than ``task_heartbeat_timeout`` as
    ``up_for_retry`` or ``failed``, by their retries, and free the cleared tries whose worker
    died before stopping them. Returns the runs that changed."""
    timeout = config.scheduler.task_heartbeat_timeout
    changed: set[RunKey] = set()
    # A cleared try whose worker died before stopping it: nothing runs it any more.
    for ref in queue_store.running_past_heartbeat(
        session, now=now, timeout=timeout, state=_S.RESTARTING
    ):
        if queue_store.release_restarting(session, ref.ti_id, ref.try_number, now):
            changed.add((ref.dag_id, ref.run_id))
    for ref in queue_store.running_past_heartbeat(session, now=now, timeout=timeout):
        run = run_store.get_dag_run(session, ref.dag_id, ref.run_id)
        dag = dags.get(session, run.dag_version_id) if run and run.dag_version_id else None
        task = dag.task_dict.get(ref.task_id) if dag else None
        state = state_after_failure(try_number=ref.try_number, max_tries=ref.max_tries)
        due = retry_time(
            state,
            task,
            try_number=ref.try_number,
            finished_at=now,
            dag_id=ref.dag_id,
            task_id=ref.task_id,
            run_id=ref.run_id,
        )
        error = (
            f"the worker running this try stopped heartbeating for over {timeout:g} s "
            "(it died or hung); the try is presumed lost"
        )
        owned = ti_store.finish_try(
            session,
            TIKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index),
            try_number=ref.try_number,
            state=state,
            now=now,
            error=error,
            next_retry_at=due,
        )
        if owned:
            log.warning(
                "task %s of %s/%s try %d: %s",
                ref.task_id,
                ref.dag_id,
                ref.run_id,
                ref.try_number,
                error,
            )
            changed.add((ref.dag_id, ref.run_id))
    return changed


def due_for_resend(tries: Sequence[QueuedTry], *, now: datetime, after: float) -> list[QueuedTry]:
    """The queued tries whose message was last sent ``after`` seconds ago or longer, in the
    order workers claim (highest priority first, then the longest queued, then by id). A
    try never sent (no time recorded) is due."""
    cutoff = now - timedelta(seconds=after)
    due = [t for t in tries if t.sent_at is None or t.sent_at <= cutoff]
    return sorted(
        due,
        key=lambda t: (
            -t.ref.priority_weight,
            t.queued_at is None,  # a row without a time last, as PostgreSQL sorts NULLs
            t.queued_at or now,
            t.ref.ti_id,
        ),
    )


#: most tries re-sent by one check: after a broker lost a long queue, it is re-sent in steps
RESEND_BATCH = 1000


def resend_stuck(session: Session, now: datetime, after: float) -> list[Workload]:
    """Mark the tries queued for ``after`` seconds or longer as sent again now, and return
    their workloads for the executor (after the commit). Each mark is a compare-and-set on
    (state, try number, last sent before the cutoff), so a try is re-sent at most once per
    interval whichever scheduler gets to it; with the Celery executor this delivers what a
    broker restart lost, and a duplicate is harmless (the claim is a compare-and-set too)."""
    cutoff = now - timedelta(seconds=after)
    resent = []
    found = resend_store.queued_tries(session, sent_before=cutoff, limit=RESEND_BATCH)
    for stuck in due_for_resend(found, now=now, after=after):
        if resend_store.mark_resent(session, stuck.ref, sent_before=cutoff, now=now):
            resent.append(workload_of(stuck.ref))
    if resent:
        log.info("sent %d tries queued for over %g s to the executor again", len(resent), after)
    return resent
