"""The embedded work queue: the database is the queue, wake-ups make it fast.

A task instance in state queued *is* the message. Workers on this machine claim such rows by
compare-and-set (``slipstream worker``); :meth:`LocalExecutor.submit` only wakes them, and
workers wake the scheduler with a :class:`~slipstream.executors.base.TaskEvent` when a try
ends. No server is needed, and queued work survives any process dying: it is still a row.
On PostgreSQL the wake-ups also travel by NOTIFY (:mod:`slipstream.executors.wakeup`), so
workers and schedulers on other machines sharing the database wake as fast.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from slipstream.executors.base import Executor, TaskEvent, Workload
from slipstream.executors.wakeup import SCHEDULER, WORKER, WakeListener, WakeSender, wake_folder

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.folder = wake_folder(database_url)
        self._listener: WakeListener | None = None
        self._sender: WakeSender | None = None

    def start(self) -> None:
        self._listener = WakeListener(self.folder, SCHEDULER, database_url=self.database_url)
        self._sender = WakeSender(self.folder, database_url=self.database_url)

    def submit(self, workloads: Sequence[Workload]) -> None:
        if workloads:
            assert self._sender is not None, "start() the executor first"
            self._sender.wake(WORKER)

    def fileno(self) -> int:
        assert self._listener is not None, "start() the executor first"
        return self._listener.fileno()

    def events(self) -> list[TaskEvent]:
        assert self._listener is not None, "start() the executor first"
        found = []
        for message in self._listener.drain():
            if not message:
                # A bare wake-up (a trigger, an unpause, a parsed DAG file): something new
                # may be due; the empty event says "look at everything that may be new".
                found.append(TaskEvent("", ""))
                continue
            try:
                found.append(TaskEvent.from_json(message))
            except (ValueError, TypeError, json.JSONDecodeError):
                log.warning("ignored a malformed wake-up message: %r", message[:200])
        return found

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._sender is not None:
            self._sender.close()
        self._listener = self._sender = None


def notify_scheduler(database_url: str, event: TaskEvent | None = None) -> None:
    """Wake the schedulers (after a trigger, a pause, a clear, a try's end): those of this
    machine, and on PostgreSQL those of every machine."""
    sender = WakeSender(wake_folder(database_url), database_url=database_url)
    try:
        sender.wake(SCHEDULER, event.to_json().encode() if event else b"")
    finally:
        sender.close()
