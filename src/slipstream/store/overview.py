"""The read queries behind the web UI's overviews: the newest runs of many DAGs, a DAG's
grid of runs by tasks, and every try of a run. The caller owns the transaction.

Each query is one statement over an index: ``ix_dag_run_dag_id_run_after`` for runs by DAG
and age (read only as deep as asked, so a long history costs nothing), the (dag_id, run_id)
prefix of the task instance and history indexes for a run's tries. Plain columns, not ORM
objects: a page reads hundreds of rows and needs no identity map.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, func, literal, select
from sqlalchemy.orm import Session

from slipstream.store.models import Dag, DagRun, TaskInstance, TaskInstanceHistory, UtcDateTime

#: the columns of a run an overview shows
RUN_COLUMNS = (
    DagRun.dag_id,
    DagRun.run_id,
    DagRun.state,
    DagRun.run_type,
    DagRun.logical_date,
    DagRun.run_after,
    DagRun.start_date,
    DagRun.end_date,
)

#: earlier than any run: the cutoff of a DAG with fewer runs than asked for
_BEGINNING = datetime(1, 1, 1, tzinfo=UTC)
_TRY_COLUMNS = ("task_id", "try_number", "state", "queued_at", "start_date", "end_date")


def recent_runs(session: Session, dag_ids: Collection[str], per_dag: int) -> list[Row[Any]]:
    """The newest ``per_dag`` runs (by ``run_after``) of each of ``dag_ids``, in one query:
    rows by dag_id, newest first.

    Bounded by ``per_dag``, not by how many runs a DAG has had: for each DAG a correlated
    subquery finds the ``run_after`` of its ``per_dag``-th newest run down the index, and
    only runs from there on are ranked (a window function alone would rank every run of
    every DAG asked for).
    """
    if not dag_ids:
        return []
    ids = list(dag_ids)
    nth_newest = (
        select(DagRun.run_after)
        .where(DagRun.dag_id == Dag.dag_id)
        .order_by(DagRun.run_after.desc())
        .offset(per_dag - 1)
        .limit(1)
        .correlate(Dag)
        .scalar_subquery()
    )
    # A DAG with fewer runs has no n-th newest: all of its runs count.
    cutoff = func.coalesce(nth_newest, literal(_BEGINNING, UtcDateTime())).label("cutoff")
    # The LIMIT (never reached) keeps both databases from merging this subquery into the
    # join, which would run the correlated subquery once per run instead of once per DAG.
    bounds = select(Dag.dag_id, cutoff).where(Dag.dag_id.in_(ids)).limit(len(ids)).subquery()
    rank = (
        func.row_number()
        .over(partition_by=DagRun.dag_id, order_by=(DagRun.run_after.desc(), DagRun.id.desc()))
        .label("rank")
    )
    ranked = (
        select(*RUN_COLUMNS, rank)
        .join(
            bounds,
            (DagRun.dag_id == bounds.c.dag_id) & (DagRun.run_after >= bounds.c.cutoff),
        )
        .subquery()
    )
    query = (
        select(*(ranked.c[c.key] for c in RUN_COLUMNS))
        .where(ranked.c.rank <= per_dag)
        .order_by(ranked.c.dag_id, ranked.c.rank)
    )
    return list(session.execute(query))


def newest_runs(
    session: Session, dag_id: str, limit: int, before: datetime | None = None
) -> list[Row[Any]]:
    """The newest ``limit`` runs of ``dag_id`` (those whose ``run_after`` is earlier than
    ``before``, if given), newest first."""
    query = (
        select(*RUN_COLUMNS)
        .where(DagRun.dag_id == dag_id)
        .order_by(DagRun.run_after.desc(), DagRun.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(DagRun.run_after < before)
    return list(session.execute(query))


def task_instance_cells(session: Session, dag_id: str, run_ids: Sequence[str]) -> list[Row[Any]]:
    """State, try and times of every task instance of the given runs of ``dag_id``."""
    if not run_ids:
        return []
    query = select(
        TaskInstance.run_id,
        TaskInstance.task_id,
        TaskInstance.operator,
        TaskInstance.state,
        TaskInstance.try_number,
        TaskInstance.start_date,
        TaskInstance.end_date,
        TaskInstance.duration,
    ).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id.in_(list(run_ids)))
    return list(session.execute(query))


def tries_of_run(
    session: Session, dag_id: str, run_id: str
) -> tuple[list[Row[Any]], list[Row[Any]]]:
    """(the current try of every task instance, every finished try) of one run."""
    current = select(*(TaskInstance.__table__.c[name] for name in _TRY_COLUMNS)).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
    )
    finished = (
        select(*(TaskInstanceHistory.__table__.c[name] for name in _TRY_COLUMNS))
        .where(TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == run_id)
        .order_by(TaskInstanceHistory.task_id, TaskInstanceHistory.try_number)
    )
    return list(session.execute(current)), list(session.execute(finished))


def previous_run(
    session: Session, dag_id: str, logical_date: datetime
) -> tuple[str, dict[str, str]] | None:
    """(run id, task states) of the run of ``dag_id`` just before ``logical_date`` — the
    run depends_on_past looks at — or None when there is none."""
    run_id = session.scalar(
        select(DagRun.run_id)
        .where(DagRun.dag_id == dag_id, DagRun.logical_date < logical_date)
        .order_by(DagRun.logical_date.desc())
        .limit(1)
    )
    if run_id is None:
        return None
    rows = session.execute(
        select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
    )
    return run_id, {task_id: state for task_id, state in rows}
