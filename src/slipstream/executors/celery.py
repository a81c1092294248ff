"""The Celery executor, scheduler side: one broker message per queued try.

The scheduler queues tries in the database exactly as with the embedded queue, commits,
then :meth:`CeleryExecutor.submit` sends one message per try to the Celery queue named after
the task's ``queue`` (Redis or RabbitMQ). ``slipstream celery worker`` on any host takes the
message and claims the try in the database by compare-and-set; the database stays the judge,
Celery only delivers. A send that fails (the broker is down) is logged and dropped: the try
stays queued in the database and the scheduler sends it again later.

The way back is the embedded queue's: a worker that ends a try wakes the schedulers
(:func:`~slipstream.executors.local.notify_scheduler`), so :meth:`fileno` and :meth:`events`
are the wake-up listener of :class:`~slipstream.executors.local.LocalExecutor`, reused.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from kombu.exceptions import KombuError

from slipstream.config import Config
from slipstream.errors import ConfigError
from slipstream.executors.base import Executor, TaskEvent, Workload
from slipstream.executors.celery_app import TASK_NAME, check_broker, make_celery_app, shown_url
from slipstream.executors.local import LocalExecutor

log = logging.getLogger(__name__)


class CeleryExecutor(Executor):
    def __init__(self, config: Config) -> None:
        self.config = config
        #: the wake-ups from workers (tries that ended): the embedded queue's, reused
        self._wakeups = LocalExecutor(config.database_url)
        self._app: Any = None
        #: one connection kept open between passes; reopened after a failure
        self._conn: Any = None
        self._producer: Any = None

    def start(self) -> None:
        self._wakeups.start()
        self._app = make_celery_app(self.config)
        try:
            check_broker(self._app)
        except ConfigError as exc:
            # Not fatal here: queued tries wait in the database until the broker is back.
            log.warning("%s; queued tasks are sent once it is back", exc)

    def submit(self, workloads: Sequence[Workload]) -> None:
        if not workloads:
            return
        assert self._app is not None, "start() the executor first"
        if self._producer is None:
            self._conn = self._app.connection_for_write()
            self._producer = self._app.amqp.Producer(self._conn)
        sent = 0
        try:
            for workload in workloads:
                self._app.send_task(
                    TASK_NAME,
                    args=[workload.to_json()],
                    queue=workload.queue,
                    producer=self._producer,
                )
                sent += 1
        except (KombuError, OSError, *self._conn.connection_errors) as exc:
            # The rest of this batch would fail the same way, each after a timeout: stop.
            log.warning(
                "could not send %d of %d queued tasks to the Celery broker at %s (%s); they "
                "stay queued and are sent again later",
                len(workloads) - sent,
                len(workloads),
                shown_url(self.config.celery.broker_url),
                exc,
            )
            self._close_connection()

    def fileno(self) -> int:
        return self._wakeups.fileno()

    def events(self) -> list[TaskEvent]:
        return self._wakeups.events()

    def stop(self) -> None:
        self._wakeups.stop()
        self._close_connection()
        if self._app is not None:
            self._app.close()
            self._app = None

    def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # it may be broken already: that is why
                self._conn.release()
        self._conn = self._producer = None
