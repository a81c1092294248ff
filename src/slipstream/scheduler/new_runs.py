"""Steps 1 and 2 of a scheduler pass: create the scheduled runs that are due, and start
queued runs, both within each DAG's ``max_active_runs``. The caller owns the transaction.

Both lock the DAG rows they act on (``FOR UPDATE SKIP LOCKED``, on PostgreSQL) and count
the DAG's runs after taking the lock: with several schedulers, one at a time creates or
starts the runs of a DAG, so a run is never created twice (no unique-constraint race to
surface) and ``max_active_runs`` holds. A DAG another scheduler holds is passed over: that
one is doing the same work with the same counts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from slipstream.config import Config
from slipstream.scheduler.dag_cache import DagCache
from slipstream.states import DagRunState, DagRunType
from slipstream.store import dags as dag_store
from slipstream.store import runs as run_store
from slipstream.store import scheduling
from slipstream.timetables import DataInterval, TimeRestriction, next_run_infos

RunKey = tuple[str, str]


def create_scheduled_runs(
    session: Session, dags: DagCache, config: Config, now: datetime, blocked: set[str]
) -> None:
    """Create due runs from each DAG's timetable — every missed interval with catchup, the
    latest without — up to ``max_active_runs`` and ``max_dagruns_to_create_per_loop`` per
    DAG. ``blocked`` is updated: the DAGs left at their ``max_active_runs``."""
    per_loop = config.scheduler.max_dagruns_to_create_per_loop
    due = scheduling.due_dags(session, now, lock=True)
    if not due:
        return
    # Counted after the DAG rows are locked: no other scheduler adds runs to these DAGs now.
    counts = scheduling.active_run_counts(session)
    for dag_row in due:
        assert dag_row.latest_version_id is not None  # due_dags requires it
        dag = dags.get(session, dag_row.latest_version_id)
        if dag is None:
            continue
        limit = dag.max_active_runs or config.core.max_active_runs_per_dag
        active = sum(counts.get(dag_row.dag_id, {}).values())
        created = 0
        while (
            dag_row.next_dagrun is not None
            and dag_row.next_dagrun_create_after is not None
            and dag_row.next_dagrun_create_after <= now
            and active < limit
            and created < per_loop
        ):
            logical_date = dag_row.next_dagrun
            start = dag_row.next_dagrun_data_interval_start or logical_date
            end = dag_row.next_dagrun_data_interval_end or logical_date
            run_id = f"{DagRunType.SCHEDULED.value}__{logical_date.isoformat()}"
            if run_store.get_dag_run(session, dag_row.dag_id, run_id) is None:
                run_store.create_dag_run(
                    session,
                    dag_id=dag_row.dag_id,
                    run_id=run_id,
                    run_type=DagRunType.SCHEDULED.value,
                    logical_date=logical_date,
                    data_interval=(start, end),
                    run_after=dag_row.next_dagrun_create_after,
                    conf={},
                    tasks=run_store.task_specs(dag),
                    now=now,
                    dag_version_id=dag_row.latest_version_id,
                    triggered_by="timetable",
                )
                active += 1
                created += 1
            restriction = TimeRestriction(dag.start_date, dag.end_date, dag.catchup)
            infos = next_run_infos(
                dag.timetable,
                restriction,
                now,
                1,
                last_automated_data_interval=DataInterval(start, end),
            )
            dag_store.set_next_dagrun(dag_row, infos[0] if infos else None)
        if active >= limit:
            blocked.add(dag_row.dag_id)
        else:
            blocked.discard(dag_row.dag_id)


def start_queued_runs(
    session: Session, dags: DagCache, config: Config, now: datetime
) -> list[RunKey]:
    """Start queued runs (``queued → running``), oldest first, while their DAG has fewer
    running runs than ``max_active_runs``; returns the runs started. A paused DAG's runs
    wait, as in Airflow; a backfill's start all the same."""
    queued = scheduling.queued_runs(session, lock=True)
    if not queued:
        return []
    counts = scheduling.active_run_counts(session)  # after the lock, as above
    running = {d: c.get(DagRunState.RUNNING.value, 0) for d, c in counts.items()}
    started: list[RunKey] = []
    for run, held in queued:
        if held or run.dag_version_id is None:
            continue
        dag = dags.get(session, run.dag_version_id)
        if dag is None:
            continue
        limit = dag.max_active_runs or config.core.max_active_runs_per_dag
        if running.get(run.dag_id, 0) >= limit:
            continue
        run_store.set_dag_run_state(session, run.dag_id, run.run_id, DagRunState.RUNNING, now)
        running[run.dag_id] = running.get(run.dag_id, 0) + 1
        started.append((run.dag_id, run.run_id))
    return started
