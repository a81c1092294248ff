"""``BaseSensorOperator``: a task that waits for something by asking (poking) until it is true.

The loop lives in :meth:`BaseSensorOperator.execute`; the two decisions it makes — how long to
sleep before the next poke and whether the sensor has waited too long — are the plain
functions :func:`next_poke_delay` and :func:`has_timed_out`, of values and ``now``.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slipstream.errors import (
    DagDefinitionError,
    SensorTimeout,
    SlipstreamError,
    SlipstreamFailException,
    SlipstreamSkipException,
    TaskControlSignal,
    TaskTimeoutError,
)
from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.context import Context

SENSOR_MODES = ("poke", "reschedule")
DEFAULT_TIMEOUT = timedelta(days=7)
# 2 ** 62 seconds outlasts any timeout; capping the exponent keeps the float finite.
_MAX_BACKOFF_EXPONENT = 62


@dataclass
class PokeReturnValue:
    """What ``poke`` may return instead of a bool: whether the wait is over, and the value
    the sensor then returns (pushed as its ``return_value`` XCom), as in Airflow."""

    is_done: bool
    xcom_value: Any = None

    def __bool__(self) -> bool:
        return self.is_done


# --- decisions --------------------------------------------------------------------------


def has_timed_out(*, started_at: float, now: float, timeout: float) -> bool:
    """True once ``timeout`` seconds have passed since ``started_at``.

    Reaching the deadline counts (not only passing it): :func:`next_poke_delay` wakes the
    sensor exactly at the deadline for a last poke, and the wait must end after it.
    """
    return now - started_at >= timeout


def next_poke_delay(
    *,
    poke_interval: float,
    poke_count: int,
    exponential_backoff: bool,
    max_wait: float | None,
    started_at: float,
    now: float,
    timeout: float,
) -> float:
    """Seconds to sleep after poke number ``poke_count`` (1 for the first) came back false.

    With ``exponential_backoff`` the interval doubles after every poke (``poke_interval``,
    ``2 * poke_interval``, ``4 * ...``), capped by ``max_wait``. The sleep never runs past
    the timeout, so a sensor gives up on time rather than up to one interval late.
    """
    delay = poke_interval
    if exponential_backoff:
        delay = poke_interval * 2.0 ** min(max(poke_count - 1, 0), _MAX_BACKOFF_EXPONENT)
        if max_wait is not None:
            delay = min(delay, max_wait)
    remaining = timeout - (now - started_at)
    return max(0.0, min(delay, remaining))


# --- the operator -----------------------------------------------------------------------


class BaseSensorOperator(BaseOperator):
    """Waits until :meth:`poke` returns true (or a done :class:`PokeReturnValue`).

    :param poke_interval: time between pokes (seconds or a timedelta).
    :param timeout: how long to wait in all before giving up with :class:`SensorTimeout`,
        which fails the task *without* retry (or skips it, with ``soft_fail``).
    :param soft_fail: on a timeout (the sensor's ``timeout``, the task's
        ``execution_timeout``) or a fail signal, mark the task skipped instead of failed.
    :param mode: ``"poke"`` holds the worker slot and sleeps between pokes. ``"reschedule"``
        is accepted so that Airflow DAGs load unchanged, but until the scheduler can put a
        sensor back to sleep between pokes it runs exactly like ``"poke"``, in one try:
        ``timeout`` counts from the start of that try and ``execution_timeout`` bounds the
        whole wait, not each poke.
    :param exponential_backoff: double the interval after every poke, up to ``max_wait``.
    :param max_wait: the longest interval exponential backoff may reach.
    :param silent_fail: an exception raised by ``poke`` (other than slipstream's own errors
        and signals) is logged and counted as "not yet" instead of failing the task.
    """

    ui_color = "#e6f1f2"

    def __init__(
        self,
        *,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        soft_fail: bool = False,
        mode: str = "poke",
        exponential_backoff: bool = False,
        max_wait: timedelta | float | None = None,
        silent_fail: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Airflow keeps these two as float seconds and max_wait as a timedelta.
        self.poke_interval = _seconds("poke_interval", poke_interval, self.task_id)
        self.timeout = _seconds("timeout", timeout, self.task_id)
        self.max_wait = (
            None
            if max_wait is None
            else timedelta(seconds=_seconds("max_wait", max_wait, self.task_id))
        )
        if mode not in SENSOR_MODES:
            raise DagDefinitionError(
                f"task {self.task_id!r}: mode must be one of {', '.join(SENSOR_MODES)}, not {mode!r}"
            )
        self.mode = mode
        self.soft_fail = bool(soft_fail)
        self.exponential_backoff = bool(exponential_backoff)
        self.silent_fail = bool(silent_fail)
        # Seams for tests, not API: the clock that measures the timeout and the sleep
        # between pokes, so a unit test can run a week-long wait in no time.
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], None] = time.sleep

    @property
    def reschedule(self) -> bool:
        return self.mode == "reschedule"

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check once whether the wait is over. Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement poke()")

    def execute(self, context: Context) -> Any:
        if self.reschedule:
            print("mode='reschedule' runs as 'poke' for now: the task waits in this try")
        started_at = self._clock()
        poke_count = 1
        try:
            while True:
                done, xcom_value = self._poke_once(context)
                if done:
                    break
                now = self._clock()
                if has_timed_out(started_at=started_at, now=now, timeout=self.timeout):
                    raise SensorTimeout(
                        f"sensor timed out: it waited {now - started_at:.1f}s, "
                        f"more than its timeout of {self.timeout:g}s"
                    )
                self._sleep(
                    next_poke_delay(
                        poke_interval=self.poke_interval,
                        poke_count=poke_count,
                        exponential_backoff=self.exponential_backoff,
                        max_wait=self.max_wait.total_seconds() if self.max_wait else None,
                        started_at=started_at,
                        now=now,
                        timeout=self.timeout,
                    )
                )
                poke_count += 1
        except (SlipstreamFailException, TaskTimeoutError) as exc:
            # Airflow's soft_fail: giving up (either timeout, or a fail signal) skips instead.
            if self.soft_fail:
                raise SlipstreamSkipException(f"skipped because soft_fail is set: {exc}") from exc
            raise
        print(f"Success criteria met after {poke_count} poke(s). Exiting.")
        return xcom_value

    def _poke_once(self, context: Context) -> tuple[bool, Any]:
        try:
            result = self.poke(context)
        except (TaskControlSignal, SlipstreamError):
            # signals, timeouts, a stop request and slipstream's own errors are never silenced
            raise
        except Exception:
            if not self.silent_fail:
                raise
            print(
                f"ERROR: poke failed; silent_fail is set, so poking goes on:\n{traceback.format_exc()}"
            )
            return False, None
        if isinstance(result, PokeReturnValue):
            return result.is_done, result.xcom_value
        return bool(result), None


def _seconds(name: str, value: Any, task_id: str) -> float:
    """A duration argument as seconds: a timedelta or a finite, non-negative number."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise DagDefinitionError(
            f"task {task_id!r}: {name} must be a timedelta or a number of seconds, not {value!r}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise DagDefinitionError(
            f"task {task_id!r}: {name} must be a finite, non-negative duration, not {value!r}"
        )
    return seconds
