"""Everything on one machine in one command: ``slipstream standalone``.

The supervisor migrates the database, parses the DAG folder once (so the DAGs are there
when it says it is ready), then forks one process per component — the DAG processor, the
scheduler and N workers — from its own warm interpreter, so start-up costs no imports. A
component that dies is started again; SIGINT or SIGTERM stops them all, each the way it
stops on its own (the workers let running tasks finish within worker.shutdown_timeout).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from sqlalchemy import Engine

from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.dag_processor import DagProcessorLoop
from slipstream.errors import SlipstreamError
from slipstream.executors import make_executor
from slipstream.scheduler.scheduler import Scheduler
from slipstream.store import jobs
from slipstream.store.crypto import load_fernet
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.schema import migrate
from slipstream.worker.worker import Worker, install_stop_handlers

log = logging.getLogger(__name__)


@dataclass
class Component:
    name: str
    job_type: str
    main: Callable[[], None]
    #: for a component with no job heartbeat (the web server): is it serving yet?
    ready: Callable[[], bool] | None = None
    pid: int | None = None
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        config: Config,
        *,
        workers: int = 1,
        concurrency: int | None = None,
        extra: Sequence[Component] = (),
    ) -> None:
        self.config = config
        self.workers = workers
        self.concurrency = concurrency
        #: components from above this layer (the web server), run and watched like the rest
        self.extra = list(extra)
        self.components: list[Component] = []
        self._stopping = False

    # -- what each child runs ---------------------------------------------------------
    def _dag_processor(self) -> None:
        loop = DagProcessorLoop(self.config, session_factory(make_engine(self.config)))

        def stop(signum: int, frame: FrameType | None) -> None:
            loop.request_stop()

        signal.signal(signal.SIGTERM, stop)
        loop.run()

    def _scheduler(self) -> None:
        factory = session_factory(make_engine(self.config))
        scheduler = Scheduler(self.config, factory, make_executor(self.config))
        stopped = False
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopped
            stopped = True

        signal.signal(signal.SIGTERM, stop)
        scheduler.start()
        try:
            scheduler.run(lambda: stopped, interrupt_fd=read_fd)
        finally:
            scheduler.stop()

    def _worker(self) -> None:
        engine = make_engine(self.config)
        if self.config.core.executor.strip().lower() == "celery":
            # The scheduler sends Celery messages: the workers here must take them from
            # the broker (a `slipstream worker` would only find the rows on its timer).
            # Imported here: Celery is an optional install (the `celery` extra).
            from slipstream.worker.celery_task import serve

            queues = [q.strip() for q in self.config.worker.queues.split(",") if q.strip()]
            concurrency = self.concurrency or self.config.celery.worker_concurrency
            code = serve(
                self.config,
                engine,
                load_fernet(self.config),
                queues=queues,
                concurrency=concurrency,
                announce=log.info,
            )
            if code:  # the supervisor restarts a component that fails
                raise SlipstreamError(f"the Celery worker exited with code {code}")
            return
        worker = Worker(self.config, engine, load_fernet(self.config), concurrency=self.concurrency)
        install_stop_handlers(worker)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor forwards it as SIGTERM
        worker.run()

    # -- supervising --------------------------------------------------------------------
    def prepare(self, engine: Engine) -> None:
        """Migrate, and parse the DAG folder once, before any component starts."""
        migrate(engine)
        load_fernet(self.config)  # generate the key once, before the workers race for it
        from slipstream.dag_processor import DagProcessor

        DagProcessor(self.config, session_factory(engine)).process_folder()

    def start(self, engine: Engine) -> None:
        engine.dispose()  # no connection may cross the forks below
        self.components = [
            Component("dag-processor", "dag_processor", self._dag_processor),
            Component("scheduler", "scheduler", self._scheduler),
            *(Component(f"worker-{i + 1}", "worker", self._worker) for i in range(self.workers)),
            *self.extra,
        ]
        for component in self.components:
            self._spawn(component)

    def _spawn(self, component: Component) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                # Ctrl-C reaches the whole terminal group: the children leave it to the
                # supervisor, which stops each of them in order.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                component.main()
            except BaseException:
                log.exception("%s failed", component.name)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        component.pid = pid

    def wait_ready(self, engine: Engine, timeout: float = 30.0) -> bool:
        """Until the scheduler and every worker have registered their heartbeat."""
        factory = session_factory(engine)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with transaction(factory, readonly=True) as session:
                now = utcnow()
                schedulers = jobs.live(session, "scheduler", now=now, timeout=60)
                workers = jobs.live(session, "worker", now=now, timeout=60)
            mine = {c.pid for c in self.components}
            if (
                any(j.pid in mine for j in schedulers)
                and sum(1 for j in workers if j.pid in mine) >= self.workers
                and all(c.ready() for c in self.components if c.ready is not None)
            ):
                engine.dispose()
                return True
            time.sleep(0.02)
        engine.dispose()
        return False

    def supervise(self) -> None:
        """Wait for the children; restart one that dies; stop all on SIGINT/SIGTERM.

        Signals only set a flag; the byte Python writes to the wake-up pipe on each signal
        (SIGCHLD included) ends the wait, so a stop or a death is handled at once.
        """
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            self._stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        try:
            while not self._stopping:
                if not self._reap_and_restart():
                    return
                select.select([read_fd], [], [], 5.0)
                with contextlib.suppress(BlockingIOError):
                    os.read(read_fd, 4096)
        finally:
            signal.set_wakeup_fd(previous)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(read_fd)
            os.close(write_fd)
        self.stop_all()

    def _reap_and_restart(self) -> bool:
        """Handle every child that exited; False when there are none left to wait for."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            component = next((c for c in self.components if c.pid == pid), None)
            if component is None:
                continue
            component.pid = None
            if self._stopping:
                continue
            now = time.monotonic()
            component.restarts = [t for t in component.restarts if now - t < 60] + [now]
            if len(component.restarts) > 5:
                log.error("%s keeps dying (%s); stopping everything", component.name, _how(status))
                self._stopping = True
                return True
            log.error("%s exited (%s); starting it again", component.name, _how(status))
            time.sleep(min(2.0, 0.2 * len(component.restarts)))
            self._spawn(component)

    def stop_all(self) -> None:
        """SIGTERM to each child (workers let running tasks finish), SIGKILL past a grace."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        alive = [c for c in self.components if c.pid is not None]
        for component in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(component.pid, signal.SIGTERM)  # type: ignore[arg-type]
        grace = self.config.worker.shutdown_timeout + self.config.core.killed_task_cleanup_time + 5
        deadline = time.monotonic() + grace
        for component in alive:
            while component.pid is not None:
                pid, _ = os.waitpid(component.pid, os.WNOHANG)
                if pid:
                    component.pid = None
                elif time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(component.pid, signal.SIGKILL)
                    os.waitpid(component.pid, 0)
                    component.pid = None
                else:
                    time.sleep(0.05)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"
