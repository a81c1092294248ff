"""Who may run as a scheduler. On PostgreSQL any number of schedulers share the work (row
locks divide it); on SQLite, whose one writer at a time makes a second scheduler useless
and whose lack of row locks makes it unsafe, a scheduler refuses to start while another
runs.

"Runs" is decided from the ``job`` table: a scheduler row that says it runs and has
heartbeat within three heartbeat intervals. The check and the new row are written in one
transaction, which SQLite begins with ``BEGIN IMMEDIATE``, so two schedulers starting at
once cannot both pass it. A predecessor on this machine whose process is gone (killed,
crashed) does not count however fresh its last heartbeat: a restart right after a crash
must not wait for its row to go stale.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from slipstream.errors import SlipstreamError
from slipstream.store import jobs

JOB_TYPE = "scheduler"
#: heartbeats a scheduler may miss (a long pass, a slow database) and still count as running
MISSED_HEARTBEATS = 3


class AnotherSchedulerRunning(SlipstreamError):
    """A scheduler was started on a SQLite database another scheduler is running on."""


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process of this machine (a zombie is not: it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # another user's process
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def register(
    session: Session,
    *,
    hostname: str,
    pid: int,
    now: datetime,
    heartbeat_interval: float,
    alive: Callable[[int], bool] = process_alive,
) -> int:
    """Register this scheduler's job row and return its id; on SQLite, first refuse with
    :class:`AnotherSchedulerRunning` if another scheduler runs."""
    if session.get_bind().dialect.name == "sqlite":
        others = jobs.live(
            session, JOB_TYPE, now=now, timeout=MISSED_HEARTBEATS * heartbeat_interval
        )
        for job in others:
            if job.hostname == hostname and (job.pid == pid or not alive(job.pid)):
                # A predecessor here that died without saying so: record that it stopped.
                jobs.stop(session, job.id, now)
                continue
            raise AnotherSchedulerRunning(
                f"another scheduler (pid {job.pid} on host {job.hostname}) is running on this "
                "SQLite database; SQLite supports one scheduler — use PostgreSQL to run several"
            )
    return jobs.register(session, JOB_TYPE, hostname=hostname, pid=pid, now=now)
