"""One DAG run looked at: which of its tasks became ready, skipped or upstream-failed, and
whether the run is over. The decisions come from :mod:`slipstream.decisions`; this module
reads the run's rows, asks, and writes the answers by compare-and-set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from slipstream.decisions import Verdict, dag_run_outcome, dagrun_timed_out, decide_ready
from slipstream.serialization import SerializedDag
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import runs as run_store
from slipstream.store import scheduling
from slipstream.store import task_instances as ti_store
from slipstream.store.scheduling import RunRow
from slipstream.store.task_instances import TIKey

_S = TaskInstanceState


@dataclass
class Evaluation:
    """What looking at one run did."""

    scheduled: list[str] = field(default_factory=list)
    finished: DagRunState | None = None
    #: when this run must be looked at again even if nothing happens (retry, timeout)
    wake_at: datetime | None = None


def evaluate_run(
    session: Session, run: RunRow, dag: SerializedDag, *, now: datetime, hostname: str
) -> Evaluation:
    result = Evaluation()
    rows = scheduling.ti_states(session, run.dag_id, run.run_id)
    # Tasks of the run's DAG version only: a row for a task the version lacks is left out.
    nodes = {t: n for t, n in dag.task_nodes().items() if t in rows}
    states = {t: _S(rows[t][0]) for t in nodes}
    retry_at = {t: rows[t][1] for t in nodes}

    if dagrun_timed_out(run.start_date, dag.dagrun_timeout, now):
        reason = f"the run exceeded its dagrun_timeout of {dag.dagrun_timeout}"
        _end_run(session, run, DagRunState.FAILED, states, now, reason=reason)
        result.finished = DagRunState.FAILED
        return result

    past = None
    needs_past = any(n.depends_on_past or n.wait_for_downstream for n in nodes.values())
    if needs_past and run.logical_date is not None:
        past = run_store.previous_run_states(session, run.dag_id, run.logical_date)

    # Skips and upstream failures can cascade: decide again until nothing changes.
    while True:
        verdicts = decide_ready(nodes, states, now=now, next_retry_at=retry_at, past_states=past)
        changed = False
        for task_id, verdict in verdicts.items():
            key = TIKey(run.dag_id, run.run_id, task_id)
            current = states[task_id]
            if verdict in (Verdict.SKIP, Verdict.UPSTREAM_FAILED):
                new = _S.SKIPPED if verdict == Verdict.SKIP else _S.UPSTREAM_FAILED
                if ti_store.set_state(
                    session, key, expected={current}, new=new, now=now, end_date=now
                ):
                    states[task_id] = new
                    changed = True
            elif verdict == Verdict.RUN:
                if dag.task_dict[task_id].is_empty:
                    # Nothing to run: the scheduler marks it success itself, as Airflow does.
                    try_number = ti_store.start_try(
                        session, key, expected={current}, now=now, hostname=hostname
                    )
                    if try_number is not None and ti_store.finish_try(
                        session, key, try_number=try_number, state=_S.SUCCESS, now=now
                    ):
                        states[task_id] = _S.SUCCESS
                        changed = True
                elif ti_store.set_state(
                    session, key, expected={current}, new=_S.SCHEDULED, now=now, scheduled_at=now
                ):
                    states[task_id] = _S.SCHEDULED
                    result.scheduled.append(task_id)
        if not changed:
            break

    outcome = dag_run_outcome(nodes, states)
    if outcome is not None:
        _end_run(session, run, outcome, states, now)
        result.finished = outcome
        return result
    waits = [
        due
        for t, due in retry_at.items()
        if due is not None and states[t] == _S.UP_FOR_RETRY and due > now
    ]
    if dag.dagrun_timeout is not None and run.start_date is not None:
        waits.append(run.start_date + dag.dagrun_timeout)
    result.wake_at = min(waits) if waits else None
    return result


def _end_run(
    session: Session,
    run: RunRow,
    outcome: DagRunState,
    states: dict[str, TaskInstanceState],
    now: datetime,
    *,
    reason: str | None = None,
) -> None:
    """Finish the run. A run cut short leaves no task unfinished: what was queued or running
    fails (its worker sees the change at its next heartbeat and stops the try), what never
    started is skipped, as in Airflow."""
    for task_id, state in states.items():
        if state.is_finished:
            continue
        in_flight = state in (_S.QUEUED, _S.RUNNING, _S.RESTARTING)
        new = _S.FAILED if in_flight else _S.SKIPPED
        extra = {"error": reason} if reason and in_flight else {}
        ti_store.set_state(
            session,
            TIKey(run.dag_id, run.run_id, task_id),
            expected={state},
            new=new,
            now=now,
            end_date=now,
            **extra,
        )
    run_store.set_dag_run_state(session, run.dag_id, run.run_id, outcome, now)
