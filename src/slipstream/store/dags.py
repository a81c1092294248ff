"""Queries on ``dag``, ``dag_version`` and ``dag_code``: the DAGs the processor found, their
versions and the source of their files.

A ``dag`` row is the DAG's identity and its user-facing state (paused, active, next run);
a ``dag_version`` row is one serialized form, added only when the content hash changes; a
``dag_code`` row is a DAG file's text as last parsed, for the web UI (which never reads DAG
files itself). The caller owns the transaction: these functions take a Session and never
commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from slipstream.states import DagRunType
from slipstream.store.models import Dag, DagCode, DagRun, DagVersion
from slipstream.timetables import DagRunInfo, DataInterval


def get(session: Session, dag_id: str) -> Dag | None:
    return session.get(Dag, dag_id)


def list_dags(session: Session, include_inactive: bool = False) -> list[Dag]:
    query = select(Dag).order_by(Dag.dag_id)
    if not include_inactive:
        query = query.where(Dag.is_active.is_(True))
    return list(session.scalars(query))


def all_dag_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Dag.dag_id).order_by(Dag.dag_id)))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Dag)) or 0


def active_owners(session: Session, dag_ids: Collection[str]) -> dict[str, str]:
    """dag_id -> fileloc of the active rows among ``dag_ids``: which file holds each id now."""
    if not dag_ids:
        return {}
    rows = session.execute(
        select(Dag.dag_id, Dag.fileloc).where(
            Dag.dag_id.in_(list(dag_ids)), Dag.is_active.is_(True)
        )
    )
    return {dag_id: fileloc for dag_id, fileloc in rows}


def upsert(
    session: Session, data: Mapping[str, Any], now: datetime, *, paused_by_default: bool = False
) -> tuple[Dag, bool]:
    """Insert or update the ``dag`` row from a serialized DAG; True when it was inserted.

    ``is_paused`` is set on insert only, from the DAG's ``is_paused_upon_creation`` or else
    ``paused_by_default``: afterwards it is the user's to change.
    """
    paused = data.get("is_paused_upon_creation")
    # INSERT ... ON CONFLICT DO NOTHING first: two processors storing the same new DAG at
    # once cannot collide, and on SQLite the transaction takes the write lock right away
    # instead of failing to upgrade a read later.
    inserted = session.execute(
        _insert(session, Dag)
        .values(
            dag_id=data["dag_id"],
            fileloc=data["fileloc"],
            is_paused=paused_by_default if paused is None else bool(paused),
            is_active=True,
            tags=[],
        )
        .on_conflict_do_nothing(index_elements=[Dag.dag_id])
    )
    created = bool(getattr(inserted, "rowcount", 0))
    dag = session.get(Dag, data["dag_id"], with_for_update=True, populate_existing=True)
    assert dag is not None  # inserted above or already there
    dag.fileloc = data["fileloc"]
    dag.description = data.get("description")
    dag.tags = list(data.get("tags") or [])
    dag.owners = data.get("owner")
    dag.timetable_summary = data.get("timetable_summary")
    dag.max_active_runs = data.get("max_active_runs")
    dag.max_active_tasks = data.get("max_active_tasks")
    dag.last_parsed_at = now
    dag.is_active = True
    return dag, created


def latest_version(session: Session, dag_id: str) -> DagVersion | None:
    dag = session.get(Dag, dag_id)
    if dag is None or dag.latest_version_id is None:
        return None
    return session.get(DagVersion, dag.latest_version_id)


def get_version(session: Session, version_id: int) -> DagVersion | None:
    return session.get(DagVersion, version_id)


def list_versions(session: Session, dag_id: str) -> list[DagVersion]:
    query = select(DagVersion).where(DagVersion.dag_id == dag_id).order_by(DagVersion.id)
    return list(session.scalars(query))


def record_version(
    session: Session, dag: Dag, data: Mapping[str, Any], version_hash: str, now: datetime
) -> DagVersion | None:
    """Point ``dag`` at the version with ``version_hash``, adding it if it is new.

    Returns the new row, or None when the latest version already has this hash. Going back
    to an earlier content reuses that earlier version (the hash is unique per DAG).
    """
    current = latest_version(session, dag.dag_id) if dag.latest_version_id else None
    if current is not None and current.version_hash == version_hash:
        return None
    inserted = session.execute(
        _insert(session, DagVersion)
        .values(
            dag_id=dag.dag_id,
            version_hash=version_hash,
            fileloc=data["fileloc"],
            data=dict(data),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[DagVersion.dag_id, DagVersion.version_hash])
    )
    version = session.scalar(
        select(DagVersion).where(
            DagVersion.dag_id == dag.dag_id, DagVersion.version_hash == version_hash
        )
    )
    assert version is not None  # inserted above or already there
    dag.latest_version_id = version.id
    return version if getattr(inserted, "rowcount", 0) else None


def _insert(session: Session, model: type[Any]) -> Any:
    """The dialect's INSERT, which offers ON CONFLICT (PostgreSQL and SQLite both have it)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def get_serialized(session: Session, dag_id: str) -> dict[str, Any] | None:
    """The latest serialized form of ``dag_id``, or None if it was never parsed."""
    version = latest_version(session, dag_id)
    return None if version is None else dict(version.data)


def deactivate_missing_in_file(session: Session, fileloc: str, keep: Collection[str]) -> list[str]:
    """Deactivate the DAGs ``fileloc`` defined before but not any more; return their ids."""
    result = session.execute(
        update(Dag)
        .where(Dag.fileloc == fileloc, Dag.is_active.is_(True), Dag.dag_id.not_in(list(keep)))
        .values(is_active=False)
        .returning(Dag.dag_id)
    )
    return sorted(result.scalars())


def deactivate_files_not_in(session: Session, filelocs: Collection[str]) -> list[str]:
    """Deactivate the DAGs whose file is no longer a DAG file (deleted, ignored, moved)."""
    # One UPDATE (a write first: see :func:`upsert`), returning the ids it retired.
    result = session.execute(
        update(Dag)
        .where(Dag.is_active.is_(True), Dag.fileloc.not_in(list(filelocs)))
        .values(is_active=False)
        .returning(Dag.dag_id)
    )
    return sorted(result.scalars())


def set_next_dagrun(dag: Dag, info: DagRunInfo | None) -> None:
    dag.next_dagrun = info.logical_date if info else None
    dag.next_dagrun_data_interval_start = info.data_interval.start if info else None
    dag.next_dagrun_data_interval_end = info.data_interval.end if info else None
    dag.next_dagrun_create_after = info.run_after if info else None


def last_automated_interval(session: Session, dag_id: str) -> DataInterval | None:
    """The data interval of the newest scheduled run: where the timetable continues from."""
    row = session.execute(
        select(DagRun.data_interval_start, DagRun.data_interval_end)
        .where(DagRun.dag_id == dag_id, DagRun.run_type == DagRunType.SCHEDULED.value)
        .order_by(DagRun.logical_date.desc())
        .limit(1)
    ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return DataInterval(row[0], row[1])


def set_paused(session: Session, dag_id: str, paused: bool) -> bool:
    """Pause or unpause; False when no such DAG exists."""
    result = session.execute(update(Dag).where(Dag.dag_id == dag_id).values(is_paused=paused))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def find(
    session: Session,
    *,
    search: str | None = None,
    tags: Collection[str] = (),
    paused: bool | None = None,
    include_inactive: bool = False,
    limit: int,
    offset: int = 0,
) -> tuple[list[Dag], int]:
    """One page of DAGs by id, and how many match in all.

    ``search`` matches anywhere in the id (case-insensitive); a DAG matches ``tags`` when it
    has any of them. Tags live in a JSON list, which SQLite and PostgreSQL query differently,
    so they are matched here on the (id, tags) pairs: a few thousand short rows.
    """
    query = select(Dag.dag_id, Dag.tags).order_by(Dag.dag_id)
    if not include_inactive:
        query = query.where(Dag.is_active.is_(True))
    if paused is not None:
        query = query.where(Dag.is_paused.is_(paused))
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Dag.dag_id.ilike(f"%{escaped}%", escape="\\"))
    wanted = set(tags)
    ids = [
        dag_id
        for dag_id, dag_tags in session.execute(query)
        if not wanted or wanted.intersection(dag_tags or ())
    ]
    page = ids[offset : offset + limit]
    if not page:
        return [], len(ids)
    rows = {row.dag_id: row for row in session.scalars(select(Dag).where(Dag.dag_id.in_(page)))}
    return [rows[dag_id] for dag_id in page if dag_id in rows], len(ids)


def all_tags(session: Session) -> list[str]:
    """Every tag of an active DAG, sorted."""
    found: set[str] = set()
    for tags in session.scalars(select(Dag.tags).where(Dag.is_active.is_(True))):
        found.update(tags or ())
    return sorted(found)


# --- the source of DAG files ---------------------------------------------------------


def put_code(session: Session, fileloc: str, source: str, now: datetime) -> None:
    """Store the text of ``fileloc``; an unchanged text (same hash) keeps its row and time."""
    source_hash = hashlib.sha256(source.encode("utf-8")).hexdigest()
    insert = _insert(session, DagCode).values(
        fileloc=fileloc, source=source, source_hash=source_hash, updated_at=now
    )
    # One statement either way; the WHERE leaves an unchanged file's row untouched.
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[DagCode.fileloc],
            set_={
                "source": insert.excluded.source,
                "source_hash": insert.excluded.source_hash,
                "updated_at": insert.excluded.updated_at,
            },
            where=DagCode.source_hash != insert.excluded.source_hash,
        )
    )


def get_code(session: Session, fileloc: str) -> DagCode | None:
    return session.get(DagCode, fileloc)


def delete_code(session: Session, fileloc: str) -> None:
    session.execute(delete(DagCode).where(DagCode.fileloc == fileloc))


def delete_code_except(session: Session, filelocs: Collection[str]) -> None:
    """Forget the source of every file not in ``filelocs`` (deleted, ignored, moved)."""
    session.execute(delete(DagCode).where(DagCode.fileloc.not_in(list(filelocs))))
