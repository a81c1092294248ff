"""Running one try of one task.

:func:`execute_task` runs the task in the current process: render templates, call
``execute``, push the return value, run callbacks, enforce ``execution_timeout`` with a
timer signal, and decide the try's final state with the shared decision functions.
:func:`start_child` does the same in a forked child, so a crash, a hang or a leak in user
code cannot hurt the process that supervises it, and no interpreter starts per task.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from slipstream.clock import utcnow
from slipstream.decisions import should_retry
from slipstream.errors import (
    SlipstreamError,
    SlipstreamFailException,
    SlipstreamSkipException,
    TaskTimeoutError,
)
from slipstream.masking import redact_value
from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.context import DagRunInfo, build_context, set_current_context
from slipstream.sdk.dag import DAG
from slipstream.sdk.taskinstance import XCOM_RETURN_KEY, RuntimeTaskInstance, XComReader
from slipstream.states import TaskInstanceState
from slipstream.worker.logging_setup import capture_output, pump_fds_to_log
from slipstream.worker.rendered import storable_rendered_fields


@dataclass
class TryRequest:
    """Everything one try needs; built by the caller from the DAG run's rows."""

    dag: DAG
    task: BaseOperator
    dag_run: DagRunInfo
    params: dict[str, Any]
    try_number: int
    max_tries: int
    hostname: str = ""
    log_path: Path | None = None


@dataclass
class TryOutcome:
    state: TaskInstanceState
    error: str | None = None
    #: key -> JSON text of the XComs pushed during the try
    xcoms: dict[str, str] = field(default_factory=dict)
    #: tasks of the run to move none -> skipped with this try's end (branch, short circuit)
    skip_task_ids: list[str] = field(default_factory=list)
    #: False when the process died before saying how the try ended: the supervisor decides
    reported: bool = True
    #: the template fields as this try rendered them, masked and JSON-safe (see .rendered);
    #: None when the try ended before rendering them
    rendered_fields: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "state": self.state.value,
                "error": self.error,
                "xcoms": self.xcoms,
                "skip_task_ids": self.skip_task_ids,
                "reported": self.reported,
                "rendered_fields": self.rendered_fields,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> TryOutcome:
        data = json.loads(text)
        return cls(
            TaskInstanceState(data["state"]),
            data.get("error"),
            dict(data.get("xcoms") or {}),
            [str(t) for t in data.get("skip_task_ids") or []],
            bool(data.get("reported", True)),
            data.get("rendered_fields"),
        )


def _task_params(request: TryRequest) -> dict[str, Any]:
    """The task's params (the DAG's, overridden by the task's own), with the run's conf
    applied and validated; ``request.params`` holds the run-level values already checked."""
    return {**request.params, **request.task.params.resolve(request.dag_run.conf)}


def _on_timer(signum: int, frame: FrameType | None) -> None:
    raise TaskTimeoutError("task timed out: it ran past its execution_timeout")


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise SlipstreamError("task received SIGTERM and was stopped")


def run_callbacks(callbacks: Any, context: dict[str, Any], what: str) -> None:
    if not callbacks:
        return
    for callback in callbacks if isinstance(callbacks, list | tuple) else [callbacks]:
        try:
            callback(context)
        except Exception:  # a failing callback is logged; it does not change the outcome
            print(f"ERROR: {what} callback failed:\n{traceback.format_exc()}")


def execute_task(request: TryRequest, xcom_reader: XComReader | None) -> TryOutcome:
    """Run one try here and now; never raises for anything the task does."""
    task, dag = request.task, request.dag
    ti = RuntimeTaskInstance(
        task=task,
        dag_id=dag.dag_id,
        run_id=request.dag_run.run_id,
        try_number=request.try_number,
        max_tries=request.max_tries,
        logical_date=request.dag_run.logical_date,
        start_date=utcnow(),
        hostname=request.hostname,
        log_path=str(request.log_path or ""),
        xcom_reader=xcom_reader,
    )
    context = build_context(
        dag=dag, task=task, ti=ti, dag_run=request.dag_run, params=_task_params(request)
    )
    print(f"Starting attempt {request.try_number} of {request.max_tries + 1}")
    print(f"Executing {task!r} for run {request.dag_run.run_id}")
    timeout = task.execution_timeout.total_seconds() if task.execution_timeout else 0
    previous_term = signal.signal(signal.SIGTERM, _on_term)
    previous_alarm = signal.signal(signal.SIGALRM, _on_timer)
    rendered: dict[str, Any] | None = None
    try:
        with set_current_context(context):
            try:
                if timeout:
                    signal.setitimer(signal.ITIMER_REAL, timeout)
                task.render_template_fields(context)
                rendered = storable_rendered_fields(redact_value(task.rendered_fields()))
                if rendered:
                    print(f"Rendered template fields: {json.dumps(rendered)}")
                run_callbacks(task.on_execute_callback, context, "on_execute")
                task.pre_execute(context)
                result = task.execute(context)
                task.post_execute(context, result)
                if task.do_xcom_push and result is not None:
                    ti.xcom_push(XCOM_RETURN_KEY, result)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except SlipstreamSkipException as exc:
        print(f"Task skipped: {exc}")
        return _finish(ti, TaskInstanceState.SKIPPED, None, rendered)
    except BaseException as exc:  # user code can raise anything; the try fails with it
        if isinstance(exc, TaskTimeoutError | SlipstreamError) and not isinstance(
            exc, SlipstreamFailException
        ):
            _safe_on_kill(task)
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        print(f"Task failed with exception:\n{traceback.format_exc()}")
        retry = not isinstance(exc, SlipstreamFailException) and should_retry(
            try_number=request.try_number, max_tries=request.max_tries
        )
        context["exception"] = exc
        if retry:
            run_callbacks(task.on_retry_callback, context, "on_retry")
            return _finish(ti, TaskInstanceState.UP_FOR_RETRY, error, rendered)
        run_callbacks(task.on_failure_callback, context, "on_failure")
        return _finish(ti, TaskInstanceState.FAILED, error, rendered)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGALRM, previous_alarm)
    run_callbacks(task.on_success_callback, context, "on_success")
    return _finish(ti, TaskInstanceState.SUCCESS, None, rendered)


def _safe_on_kill(task: BaseOperator) -> None:
    try:
        task.on_kill()
    except Exception:
        print(f"ERROR: on_kill failed:\n{traceback.format_exc()}")


def _finish(
    ti: RuntimeTaskInstance,
    state: TaskInstanceState,
    error: str | None,
    rendered: dict[str, Any] | None,
) -> TryOutcome:
    # Skips count only for a try that succeeded: a branch that failed after choosing has
    # chosen nothing, and its retry chooses again.
    skips = list(ti.skip_task_ids) if state == TaskInstanceState.SUCCESS else []
    if skips:
        print(f"Downstream tasks to skip: {', '.join(skips)}")
    print(
        f"Marking task as {state.value.upper()}. dag_id={ti.dag_id}, task_id={ti.task_id}, "
        f"run_id={ti.run_id}, try_number={ti.try_number}"
    )
    sys.stdout.flush()
    return TryOutcome(
        state=state,
        error=error,
        xcoms=dict(ti.pushed),
        skip_task_ids=skips,
        rendered_fields=rendered,
    )


# --- running a try in a forked child ---------------------------------------------------


@dataclass
class ChildTry:
    """A try running in a child process, from the supervisor's side."""

    task_id: str
    try_number: int
    pid: int
    fd: int
    #: time.monotonic() past which the supervisor steps in (the task's own timer failed)
    kill_deadline: float | None
    chunks: list[bytes] = field(default_factory=list)
    #: the supervisor had to stop the try for running past its execution_timeout
    timed_out: bool = False
    #: the supervisor asked it to stop (SIGTERM) and kills it if it does not
    stopping: bool = False
    reaped: bool = False

    def read(self) -> bool:
        """Read what the child sent; True once the child closed its end (it is exiting)."""
        data = os.read(self.fd, 65536)
        if data:
            self.chunks.append(data)
            return False
        return True

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)

    def enforce_deadline(self, now: float, grace: float) -> None:
        """Past the deadline: SIGTERM (so ``on_kill`` runs), and SIGKILL ``grace`` later."""
        if self.kill_deadline is None or now <= self.kill_deadline:
            return
        if self.timed_out or self.stopping:
            self.kill()
            self.kill_deadline = None
        else:
            self.timed_out = True
            self.terminate()
            self.kill_deadline = now + grace

    def terminate_then_kill(self, now: float, grace: float) -> None:
        """SIGTERM now, and SIGKILL ``grace`` seconds later if the try is still there (the
        supervisor's loop calls :meth:`enforce_deadline`)."""
        self.terminate()
        self.kill_deadline = now + grace
        self.stopping = True

    def stop(self, grace: float) -> TryOutcome:
        """Stop the try: SIGTERM first, so the task's ``on_kill`` can stop what it started in
        process groups of its own (a bash command), then SIGKILL after ``grace`` seconds."""
        self.terminate()
        deadline = time.monotonic() + grace
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready and self.read():
                return self.collect()
        self.kill()
        return self.collect()

    def collect(self, *, wait: bool = True) -> TryOutcome:
        """Reap the child and return its outcome (a failure when it died without one).

        With ``wait=False`` a child that reported its outcome is not waited for: it has
        nothing left to do but exit, which can take milliseconds for a large process, and
        the caller reaps it later (``reaped`` tells whether that is still to do).
        """
        os.close(self.fd)
        payload = b"".join(self.chunks)
        if payload:
            try:
                outcome = TryOutcome.from_json(payload.decode())
            except (ValueError, KeyError):
                pass
            else:
                pid, _ = os.waitpid(self.pid, 0 if wait else os.WNOHANG)
                self.reaped = pid != 0
                return outcome
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        if os.WIFSIGNALED(status):
            why = f"was killed by signal {os.WTERMSIG(status)}"
        else:
            why = f"exited with code {os.WEXITSTATUS(status)}"
        return TryOutcome(
            TaskInstanceState.FAILED,
            f"the task process {why} before reporting a result",
            reported=False,
        )


def start_child(
    request: TryRequest,
    *,
    child_init: Callable[[], XComReader | None],
    kill_grace: float,
    now_monotonic: float,
) -> ChildTry:
    """Fork a child that runs ``request`` with its output in ``request.log_path``.

    ``child_init`` runs first in the child (e.g. to open its own database connections, since
    connections must never be shared across a fork) and returns the XCom reader to use.
    """

    def prepare() -> tuple[TryRequest, XComReader | None]:
        return request, child_init()

    assert request.log_path is not None
    return fork_try(
        task_id=request.task.task_id,
        try_number=request.try_number,
        log_path=request.log_path,
        execution_timeout=request.task.execution_timeout,
        kill_grace=kill_grace,
        now_monotonic=now_monotonic,
        prepare=prepare,
    )


def fork_try(
    *,
    task_id: str,
    try_number: int,
    log_path: Path,
    execution_timeout: timedelta | None,
    kill_grace: float,
    now_monotonic: float,
    prepare: Callable[[], tuple[TryRequest, XComReader | None]],
) -> ChildTry:
    """Fork a child that calls ``prepare`` (in the child: load what the try needs, e.g. the
    DAG file) and runs the request it returns, its output going to ``log_path``. Whatever
    ``prepare`` raises fails the try, with the reason in the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            os.setsid()  # own process group: a kill reaches whatever the task started
            # The parent's handlers and wake-up descriptor are not the child's: until the
            # task installs its own, a stop signal must simply end the child.
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _child_main(log_path, prepare, write_fd)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    timeout = execution_timeout
    deadline = now_monotonic + timeout.total_seconds() + kill_grace if timeout else None
    return ChildTry(task_id, try_number, pid, read_fd, deadline)


def _child_main(
    log_path: Path,
    prepare: Callable[[], tuple[TryRequest, XComReader | None]],
    write_fd: int,
) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    log = open(log_fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    # Everything written to fd 1 and 2 — by Python, C code or programs the task starts —
    # passes through the masking pump on its way to the log.
    stop_pump = pump_fds_to_log(log)
    capture_output(open(1, "w", buffering=1, encoding="utf-8", closefd=False))  # noqa: SIM115
    try:
        request, reader = prepare()
    except BaseException as exc:  # the DAG file failed to import, the task is gone, ...
        print(f"Task could not start:\n{traceback.format_exc()}")
        # Not reported: the supervisor applies the task's retries, as for a crash.
        outcome = TryOutcome(
            TaskInstanceState.FAILED, f"{type(exc).__name__}: {exc}", reported=False
        )
    else:
        try:
            outcome = execute_task(request, reader)
        except BaseException as exc:  # a second signal while the try was already ending
            print(f"Task failed while ending:\n{traceback.format_exc()}")
            outcome = TryOutcome(
                TaskInstanceState.FAILED, f"{type(exc).__name__}: {exc}", reported=False
            )
    sys.stdout.flush()
    stop_pump()
    payload = outcome.to_json().encode()
    view = memoryview(payload)
    while view:
        written = os.write(write_fd, view)
        view = view[written:]
    os.close(write_fd)
