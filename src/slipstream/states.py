"""States of task instances and DAG runs, with the transitions each allows.

A write that changes a state is a compare-and-set on the expected state (and try number);
:func:`check_ti_transition` is the rule book those writes consult.
"""

from __future__ import annotations

from enum import StrEnum

from slipstream.errors import InvalidStateTransition


class TaskInstanceState(StrEnum):
    """Life of one task in one DAG run."""

    NONE = "none"  #: created, dependencies not yet evaluated
    SCHEDULED = "scheduled"  #: dependencies met, waiting for a pool slot / the queue
    QUEUED = "queued"  #: handed to the work queue
    RUNNING = "running"  #: a worker owns the current try
    #: cleared while running: its worker is stopping the try, then it goes back to none
    RESTARTING = "restarting"
    SUCCESS = "success"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"  #: failed, a retry is due at ``next_retry_at``
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"  #: never ran because its trigger rule cannot be met
    REMOVED = "removed"  #: the task no longer exists in the DAG

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_TI_STATES


class DagRunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self in (DagRunState.SUCCESS, DagRunState.FAILED)


class DagRunType(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"


FINISHED_TI_STATES: frozenset[TaskInstanceState] = frozenset(
    {
        TaskInstanceState.SUCCESS,
        TaskInstanceState.FAILED,
        TaskInstanceState.SKIPPED,
        TaskInstanceState.UPSTREAM_FAILED,
        TaskInstanceState.REMOVED,
    }
)

_S = TaskInstanceState

# From each state, the states a write may move a task instance to. Clearing a task
# (user action) moves any state back to NONE, so NONE is reachable from everywhere.
TI_TRANSITIONS: dict[TaskInstanceState, frozenset[TaskInstanceState]] = {
    _S.NONE: frozenset(
        {_S.SCHEDULED, _S.SKIPPED, _S.UPSTREAM_FAILED, _S.REMOVED, _S.SUCCESS, _S.FAILED}
    ),
    _S.SCHEDULED: frozenset(
        {_S.QUEUED, _S.NONE, _S.SKIPPED, _S.UPSTREAM_FAILED, _S.REMOVED, _S.RUNNING}
    ),
    _S.QUEUED: frozenset({_S.RUNNING, _S.SCHEDULED, _S.FAILED, _S.UP_FOR_RETRY, _S.NONE}),
    _S.RUNNING: frozenset(
        {_S.SUCCESS, _S.FAILED, _S.UP_FOR_RETRY, _S.SKIPPED, _S.NONE, _S.RESTARTING}
    ),
    _S.RESTARTING: frozenset({_S.NONE, _S.FAILED}),
    _S.UP_FOR_RETRY: frozenset({_S.SCHEDULED, _S.NONE, _S.FAILED}),
    _S.SUCCESS: frozenset({_S.NONE, _S.FAILED}),
    _S.FAILED: frozenset({_S.NONE, _S.SUCCESS}),
    _S.SKIPPED: frozenset({_S.NONE, _S.SUCCESS, _S.FAILED}),
    _S.UPSTREAM_FAILED: frozenset({_S.NONE, _S.SUCCESS, _S.FAILED}),
    _S.REMOVED: frozenset({_S.NONE}),
}


def check_ti_transition(old: TaskInstanceState, new: TaskInstanceState) -> None:
    """Raise :class:`InvalidStateTransition` unless ``old -> new`` is allowed."""
    if old != new and new not in TI_TRANSITIONS[old]:
        raise InvalidStateTransition(f"a task instance cannot go from {old} to {new}")
