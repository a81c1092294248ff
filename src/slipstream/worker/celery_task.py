"""The worker side of the Celery executor: what ``slipstream celery worker`` runs.

The Celery task (``slipstream.run_try``) is a thin door into the worker's own machinery:
it decodes the :class:`~slipstream.executors.base.Workload` and calls
:meth:`Worker.run_workload`, which claims exactly that try by compare-and-set, forks a child
for it exactly as ``slipstream worker`` does (its log, ``execution_timeout``, SIGTERM then
SIGKILL, death with its parent), heartbeats it, records its end only if it still owns the
try, and wakes the schedulers. A message delivered twice or late finds its try taken and
returns at once: the message is acknowledged and nothing runs twice.

The processes: Celery's main process (the consumer) registers one ``worker`` job, with the
detail ``celery:<queues>``, heartbeats it on Celery's own timer and ends it on the way out,
so health checks and the UI see the worker. Each prefork pool process runs one try at a
time and builds its own :class:`Worker` on its first try, with database connections of its
own (connections never cross a fork).
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Callable
from typing import Any

from celery import bootsteps
from celery.exceptions import CPendingDeprecationWarning
from cryptography.fernet import MultiFernet
from sqlalchemy import Engine

from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.errors import DatabaseError
from slipstream.executors.base import Workload
from slipstream.executors.celery_app import TASK_NAME, check_broker, make_celery_app, shown_url
from slipstream.store import jobs
from slipstream.store.db import session_factory, transaction
from slipstream.worker.worker import Worker, prepare_process

log = logging.getLogger(__name__)


class CeleryWorkerHost:
    """What the processes of one Celery worker share: settings, the job, the task's body."""

    def __init__(
        self, config: Config, engine: Engine, fernet: MultiFernet, *, queues: list[str]
    ) -> None:
        self.config = config
        self.engine = engine
        self.fernet = fernet
        self.queues = queues
        self.hostname = socket.gethostname()
        self.job_id: int | None = None
        self._worker: Worker | None = None

    # -- the main process: the job that stands for this worker ----------------------------
    def register(self) -> None:
        """Register the worker's job; before the pool starts, so every pool process knows it."""
        with transaction(session_factory(self.engine)) as session:
            self.job_id = jobs.register(
                session,
                "worker",
                hostname=self.hostname,
                pid=os.getpid(),
                now=utcnow(),
                detail="celery:" + ",".join(self.queues),
            )
        self.engine.dispose()  # no connection may cross the pool's forks

    def heartbeat(self) -> None:
        if self.job_id is None:
            return
        try:
            with transaction(session_factory(self.engine)) as session:
                jobs.heartbeat(session, self.job_id, utcnow())
        except DatabaseError as exc:  # a restart, a long lock: the next beat tries again
            log.warning("celery worker: could not heartbeat: %s", exc)

    def deregister(self) -> None:
        if self.job_id is not None:
            with transaction(session_factory(self.engine)) as session:
                jobs.stop(session, self.job_id, utcnow())

    # -- a pool process: the task's body --------------------------------------------------
    def run_try(self, payload: str) -> bool:
        """Run the try ``payload`` names, if it is still the queued one; True if it ran."""
        try:
            workload = Workload.from_json(payload)
        except (ValueError, TypeError) as exc:
            log.warning("ignored a malformed task message %r: %s", payload[:200], exc)
            return False
        ran = self._worker_here().run_workload(workload)
        if not ran:
            log.info(
                "nothing to run for %s/%s/%s try %d: that try is not queued (taken by another "
                "message, ended, or queued again)",
                workload.dag_id,
                workload.run_id,
                workload.task_id,
                workload.try_number,
            )
        return ran

    def _worker_here(self) -> Worker:
        """This pool process's own worker, made on its first try: its children's parent and
        its database connections must be this process's, never the main process's."""
        if self._worker is None or self._worker.pid != os.getpid():
            self.engine.dispose(close=False)  # forget, without closing, the parent's connections
            worker = Worker(
                self.config, self.engine, self.fernet, concurrency=1, queues=self.queues
            )
            worker.job_id = self.job_id
            self._worker = worker
        return self._worker


def make_worker_app(host: CeleryWorkerHost) -> Any:
    """The Celery app of a worker: the shared settings, the task, and the job's heartbeat."""
    app = make_celery_app(host.config)

    @app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_try(payload: str) -> None:
        host.run_try(payload)

    interval = host.config.worker.heartbeat_interval

    class JobHeartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
        """Heartbeats the worker's job from the main process, on Celery's own timer (no
        thread: the pool forks from this process)."""

        requires = ("celery.worker.components:Timer",)

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            self.tref: Any = None

        def start(self, worker: Any) -> None:
            self.tref = worker.timer.call_repeatedly(interval, host.heartbeat)

        def stop(self, worker: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()

    app.steps["worker"].add(JobHeartbeat)
    return app


def serve(
    config: Config,
    engine: Engine,
    fernet: MultiFernet,
    *,
    queues: list[str],
    concurrency: int,
    announce: Callable[[str], None] = print,
) -> int:
    """Run a Celery worker until it is stopped; returns its exit code.

    SIGTERM (or Ctrl-C) is Celery's warm shutdown: no new messages, running tries finish. A
    second one stops them at once; their tries, no longer heartbeated, are retried by the
    scheduler after ``scheduler.task_heartbeat_timeout``.
    """
    host = CeleryWorkerHost(config, engine, fernet, queues=queues)
    app = make_worker_app(host)
    check_broker(app)
    prepare_process(config)  # before the pool forks: every pool process starts warm
    host.register()
    try:
        worker = app.Worker(
            hostname=f"slipstream-{os.getpid()}@{host.hostname}",
            pool_cls="prefork",
            concurrency=concurrency,
            queues=queues,
            loglevel=config.logging.level.upper(),
            # slipstream's workers need no worker-to-worker chatter
            without_mingle=True,
            without_gossip=True,
            without_heartbeat=True,
            quiet=True,
        )
        # Celery warns that it keeps a late-acknowledged task running when the broker
        # connection drops: that is what we want (the database judges the try; the message
        # handed out again finds it taken). After app.Worker(), whose logging set-up puts
        # its own "always show" filters first.
        warnings.filterwarnings(
            "ignore",
            message=r"\s*In Celery 5\.1 we introduced an optional breaking change",
            category=CPendingDeprecationWarning,
        )
        announce(
            f"celery worker started: queues {', '.join(queues)}, concurrency {concurrency}, "
            f"broker {shown_url(config.celery.broker_url)}"
        )
        worker.start()
        code: int = worker.exitcode or 0
        return code
    finally:
        host.deregister()
        app.close()
