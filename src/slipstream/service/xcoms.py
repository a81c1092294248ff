"""Reading the XComs a run's tasks pushed, for the REST API and the UI.

Values are stored as JSON text; they come back decoded. XComs are task data, not
configuration: reading them needs only the read permission, as in Airflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from slipstream.errors import NotFoundError
from slipstream.service.inspection import require_ti
from slipstream.store import xcoms as xcom_store
from slipstream.store.db import transaction


@dataclass(frozen=True)
class XComEntry:
    task_id: str
    map_index: int
    key: str
    #: the decoded JSON value
    value: Any
    timestamp: datetime


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # written by something else than a worker: show it as is
        return text


def list_xcoms(
    factory: sessionmaker[Session], dag_id: str, run_id: str, task_id: str
) -> list[XComEntry]:
    """The XComs of one task instance (every map index), by key; :class:`NotFoundError`
    names what is missing when the DAG, run or task does not exist."""
    with transaction(factory, readonly=True) as session:
        require_ti(session, dag_id, run_id, task_id)
        rows = xcom_store.list_for_task(session, dag_id=dag_id, run_id=run_id, task_id=task_id)
    return [XComEntry(r.task_id, r.map_index, r.key, _decode(r.value), r.timestamp) for r in rows]


def get_xcom(
    factory: sessionmaker[Session], dag_id: str, run_id: str, task_id: str, key: str
) -> XComEntry:
    """One XCom of a task instance by key (the unmapped one, or the lowest map index)."""
    for entry in list_xcoms(factory, dag_id, run_id, task_id):
        if entry.key == key:
            return entry
    raise NotFoundError(f"task {task_id!r} of run {run_id!r} of DAG {dag_id!r} has no XCom {key!r}")
