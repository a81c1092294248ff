"""Heartbeats of the running components (scheduler, workers, DAG processor). The caller
owns the transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from slipstream.clock import ensure_utc
from slipstream.store.models import Job

RUNNING = "running"
STOPPED = "stopped"


def register(
    session: Session, job_type: str, *, hostname: str, pid: int, now: datetime, detail: str = ""
) -> int:
    job = Job(
        job_type=job_type,
        state=RUNNING,
        hostname=hostname,
        pid=pid,
        detail=detail or None,
        start_date=now,
        latest_heartbeat=now,
    )
    session.add(job)
    session.flush()
    return job.id


def heartbeat(session: Session, job_id: int, now: datetime) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(latest_heartbeat=now))


def stop(session: Session, job_id: int, now: datetime) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(state=STOPPED, end_date=now))


def live(session: Session, job_type: str, *, now: datetime, timeout: float) -> list[Job]:
    """Jobs of ``job_type`` that say they run and heartbeat within ``timeout`` seconds."""
    query = (
        select(Job)
        .where(
            Job.job_type == job_type,
            Job.state == RUNNING,
            Job.latest_heartbeat >= now - timedelta(seconds=timeout),
        )
        .order_by(Job.id)
    )
    return list(session.scalars(query))


def get(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def latest_heartbeats(session: Session) -> dict[str, datetime]:
    """The newest heartbeat of any running job of each type (scheduler, worker, ...)."""
    rows = session.execute(
        select(Job.job_type, func.max(Job.latest_heartbeat))
        .where(Job.state == RUNNING)
        .group_by(Job.job_type)
    )
    return {job_type: ensure_utc(beat) for job_type, beat in rows if beat is not None}
