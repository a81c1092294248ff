"""Queries on XComs, stored as JSON text. The caller owns the transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from slipstream.store.models import DagRun, XCom


def get_xcom(
    session: Session,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    key: str,
    map_index: int = -1,
    include_prior_dates: bool = False,
) -> tuple[bool, Any]:
    """``(True, value)`` when the XCom exists, else ``(False, None)``.

    With ``include_prior_dates``, as in Airflow: the value from this run or, failing that,
    from the latest earlier run (by logical date) of the same DAG.
    """
    query = select(XCom.value).where(
        XCom.dag_id == dag_id,
        XCom.task_id == task_id,
        XCom.map_index == map_index,
        XCom.key == key,
    )
    if include_prior_dates:
        this_date = (
            select(DagRun.logical_date)
            .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
            .scalar_subquery()
        )
        query = (
            query.join(DagRun, (DagRun.dag_id == XCom.dag_id) & (DagRun.run_id == XCom.run_id))
            .where(DagRun.logical_date <= this_date)
            .order_by(DagRun.logical_date.desc(), XCom.timestamp.desc())
            .limit(1)
        )
    else:
        query = query.where(XCom.run_id == run_id)
    row = session.scalar(query)
    return (False, None) if row is None else (True, json.loads(row))


def clear_xcoms(
    session: Session, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> None:
    session.execute(
        delete(XCom).where(
            XCom.dag_id == dag_id,
            XCom.run_id == run_id,
            XCom.task_id == task_id,
            XCom.map_index == map_index,
        )
    )


def put_xcoms(
    session: Session,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    values: Mapping[str, str],
    now: datetime,
    map_index: int = -1,
) -> None:
    """Store XComs given as ``key -> JSON text``, replacing same-key values."""
    for key, text in values.items():
        session.merge(
            XCom(
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                map_index=map_index,
                key=key,
                value=text,
                timestamp=now,
            )
        )


def list_xcoms(session: Session, *, dag_id: str, run_id: str) -> list[XCom]:
    query = (
        select(XCom)
        .where(XCom.dag_id == dag_id, XCom.run_id == run_id)
        .order_by(XCom.task_id, XCom.key)
    )
    return list(session.scalars(query))


def list_for_task(session: Session, *, dag_id: str, run_id: str, task_id: str) -> list[XCom]:
    """The XComs of one task in one run, every map index, by key then map index."""
    query = (
        select(XCom)
        .where(XCom.dag_id == dag_id, XCom.run_id == run_id, XCom.task_id == task_id)
        .order_by(XCom.key, XCom.map_index)
    )
    return list(session.scalars(query))
