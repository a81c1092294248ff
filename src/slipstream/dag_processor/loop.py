"""The long-running DAG processor: keeps the database in step with the DAG folder.

It parses every DAG file once at start, then every ``dag_processor.refresh_interval``
seconds stats each file, re-parses only the files that are new or changed, retires the DAGs
of files that are gone, and wakes the scheduler when it stored anything. It registers itself
in the ``job`` table and heartbeats there on every check.

Between checks it sleeps in ``select`` on a socket pair, so it costs no CPU while idle and
:meth:`DagProcessorLoop.request_stop` (safe in a signal handler and from another thread)
ends the sleep at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.dag_processor.processor import DagProcessor, FileResult
from slipstream.executors.local import notify_scheduler
from slipstream.store import dags as dag_store
from slipstream.store import jobs
from slipstream.store.db import transaction

JOB_TYPE = "dag_processor"

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int, int]
"""(mtime_ns, size, inode, ctime_ns) of a file. The inode and ctime also catch a file
replaced by a copy that kept the old mtime and size (``rsync -t``, ``cp -p``)."""


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
    except OSError:  # deleted between listing and stat: it counts as gone
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True)
class PassResult:
    """What one check of the DAG folder did."""

    #: True for a pass that parsed every file (the first one, or one asked for)
    full: bool
    #: the files parsed in this pass, with what each gave
    parsed: list[FileResult] = field(default_factory=list)
    #: files parsed before that are no longer DAG files (deleted, ignored, unreadable)
    removed: list[Path] = field(default_factory=list)
    #: ids of the DAGs deactivated because their file is gone
    retired: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.full or self.parsed or self.removed or self.retired)

    @property
    def dags(self) -> int:
        return sum(len(r.dag_ids) for r in self.parsed)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.parsed if r.error is not None)

    def summary(self) -> str:
        """One line for an operator, e.g. ``parsed 3 files: 5 DAGs, 1 import error``."""
        parts = []
        if self.full or self.parsed:
            parts.append(
                f"parsed {_plural(len(self.parsed), 'file')}: {_plural(self.dags, 'DAG')}, "
                f"{_plural(self.errors, 'import error')}"
            )
        if self.removed or self.retired:
            parts.append(
                f"{_plural(len(self.removed), 'file')} gone: "
                f"{_plural(len(self.retired), 'DAG')} deactivated"
            )
        return "; ".join(parts) or "no change"


@dataclass(frozen=True)
class _Seen:
    """What the loop remembers of a file between checks."""

    stamp: Stamp
    #: DAG ids the file defines but another file held when it was parsed
    duplicates: tuple[str, ...]


class DagProcessorLoop:
    """The DAG processor as a component: :meth:`run` until :meth:`request_stop`.

    :meth:`run_once` is one check of the folder (the first call does the full pass and
    registers the job); :meth:`close` marks the job stopped. Signal handlers belong to the
    caller: the loop installs none.
    """

    def __init__(
        self,
        config: Config,
        session_factory: sessionmaker[Session],
        *,
        parallelism: int = 2,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.session_factory = session_factory
        self.clock = clock
        self.processor = DagProcessor(config, session_factory, parallelism=parallelism, clock=clock)
        self.job_id: int | None = None
        self._seen: dict[Path, _Seen] | None = None  # None until a full pass completed
        self._stopping = False
        # A socket rather than a pipe: once closed, its object refuses writes instead of
        # writing to whatever file reused the descriptor.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a signal handler must never block on it
        self._closed = False

    # --- one check ---------------------------------------------------------------------

    def run_once(self, *, full: bool = False) -> PassResult:
        """Check the folder once: everything on the first call (or with ``full``), else
        only what changed since the previous check. Heartbeats the job."""
        if self.job_id is None:
            with transaction(self.session_factory) as session:
                self.job_id = jobs.register(
                    session,
                    JOB_TYPE,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    now=self.clock(),
                    detail=str(self.config.dags_folder),
                )
        result = self._check(full=full or self._seen is None)
        with transaction(self.session_factory) as session:
            jobs.heartbeat(session, self.job_id, self.clock())
        if result.parsed or result.retired:
            self._wake_scheduler()
        return result

    def _check(self, *, full: bool) -> PassResult:
        # Stat before parsing: a file edited while it is parsed is parsed again next time.
        current: dict[Path, Stamp] = {}
        for path in self.processor.dag_files():
            stamp = _stamp(path)
            if stamp is not None:
                current[path] = stamp
        seen = self._seen or {}
        removed = sorted(set(seen) - set(current))
        if full:
            to_parse = sorted(current)
        else:
            to_parse = [p for p in sorted(current) if p not in seen or seen[p].stamp != current[p]]

        retired: list[str] = []
        if full or removed:
            # First, so a DAG moved from a deleted file to another is free to be claimed.
            retired = self.processor.retire_missing(current)
        parsed = self.processor.process_files(to_parse) if to_parse else []
        if not full and (parsed or removed):
            parsed += self._reclaim(seen, current, {r.path for r in parsed})

        # Remembered only now: after a check that failed half-way the old stamps still
        # stand, so the next check redoes its files (all of them, if it was the first).
        duplicates = {r.path: r.duplicates for r in parsed}
        self._seen = {
            path: _Seen(stamp, duplicates.get(path, seen[path].duplicates if path in seen else ()))
            for path, stamp in current.items()
        }
        return PassResult(full=full, parsed=parsed, removed=removed, retired=retired)

    def _reclaim(
        self, seen: Mapping[Path, _Seen], current: Collection[Path], parsed: Collection[Path]
    ) -> list[FileResult]:
        """Re-parse the unchanged files that lost a DAG id to another file which has since
        let it go (deleted, or no longer defining it), so the id moves to them now rather
        than at their next edit."""
        waiting = {
            path: info.duplicates
            for path, info in seen.items()
            if info.duplicates and path in current and path not in parsed
        }
        if not waiting:
            return []
        with transaction(self.session_factory) as session:
            held = dag_store.active_owners(session, {d for ids in waiting.values() for d in ids})
        freed = [path for path, ids in sorted(waiting.items()) if any(d not in held for d in ids)]
        return self.processor.process_files(freed) if freed else []

    def _wake_scheduler(self) -> None:
        # Only saves the scheduler a wait: it reads the DAGs on its own timer anyway.
        try:
            notify_scheduler(self.config.database_url)
        except OSError as exc:
            log.debug("could not wake the scheduler: %s", exc)

    # --- the loop ----------------------------------------------------------------------

    def run(self, on_pass: Callable[[PassResult], None] | None = None) -> None:
        """Check the folder every ``refresh_interval`` seconds until :meth:`request_stop`,
        then mark the job stopped. ``on_pass`` gets the result of every check.

        A stop request ends the sleep at once but never a check under way. An error other
        than the database being unreachable propagates and leaves the job running: its
        heartbeat goes stale, which is how the others tell a crashed processor.
        """
        interval = self.config.dag_processor.refresh_interval
        while not self._stopping:
            try:
                result = self.run_once()
            except OperationalError as exc:
                # The database restarting, or SQLite busy with a long writer: the next
                # check redoes what this one could not store.
                log.warning("DAG processor: database error, retrying in %g s: %s", interval, exc)
            else:
                if on_pass is not None:
                    on_pass(result)
            self._sleep(interval)
        self.close()

    def request_stop(self) -> None:
        """Stop :meth:`run` after the check under way. Safe in a signal handler."""
        self._stopping = True
        with contextlib.suppress(OSError):  # full (a wake-up already waits) or closed
            self._wake_w.send(b"\0")

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # Bytes also come from parse children, which inherit a caller's signal handlers
            # and this socket: only the flag says to stop.
            readable, _, _ = select.select([self._wake_r], [], [], remaining)
            if readable:
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(4096)

    def close(self) -> None:
        """Mark the job stopped (if it started) and release the wake-up pipe. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        try:
            if self.job_id is not None:
                with transaction(self.session_factory) as session:
                    jobs.stop(session, self.job_id, self.clock())
        finally:
            self._wake_r.close()
            self._wake_w.close()
