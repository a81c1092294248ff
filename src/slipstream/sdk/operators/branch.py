"""Branching and short-circuiting: tasks that decide which of their downstream tasks run.

A task does not write other tasks' states itself: it puts the ids to skip on its task
instance (``ti.skip_task_ids``) and whoever runs it marks them skipped together with the
try's end, in one transaction. Which ids those are is decided by the pure functions
:func:`slipstream.decisions.branch_skips` and :func:`~slipstream.decisions.short_circuit_skips`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slipstream.decisions import branch_skips, short_circuit_skips
from slipstream.errors import BranchError
from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.context import Context
from slipstream.sdk.operators.python import PythonOperator


def downstream_map(task: BaseOperator) -> dict[str, set[str]]:
    """Every task of ``task``'s DAG with its direct downstream task ids."""
    return {t.task_id: set(t.downstream_task_ids) for t in task.dag.tasks}


def chosen_task_ids(task_id: str, branches: Any) -> list[str]:
    """What a branch returned — a task id, an iterable of them, or None — as a list of ids."""
    if branches is None:
        return []
    items: Iterable[Any] = [branches] if isinstance(branches, str) else branches
    if not isinstance(items, Iterable):
        raise BranchError(
            f"branch task {task_id!r} must return a task id, a list of task ids or None, "
            f"not {type(branches).__name__}"
        )
    ids = list(items)
    wrong = [i for i in ids if not isinstance(i, str)]
    if wrong:
        raise BranchError(f"branch task {task_id!r} returned {wrong[0]!r}, which is not a task id")
    return ids


class BaseBranchOperator(BaseOperator):
    """A task that chooses which of its direct downstream tasks run.

    Subclasses implement :meth:`choose_branch`; the direct downstream tasks it does not
    choose are skipped, and trigger rules decide what lies beyond them.
    """

    def choose_branch(self, context: Context) -> str | Iterable[str] | None:
        """The task id (or ids) to follow; None follows none."""
        raise NotImplementedError(f"{type(self).__name__} does not implement choose_branch()")

    def do_branch(self, context: Context, branches_to_execute: Any) -> Any:
        """Skip the direct downstream tasks not in ``branches_to_execute``; return it.

        A TaskGroup's id stands for the group's root tasks, as in Airflow.
        """
        chosen = chosen_task_ids(self.task_id, branches_to_execute)
        groups = self.dag.task_group_dict
        followed = [
            root.task_id for c in chosen for root in (groups[c].roots if c in groups else [])
        ]
        followed += [c for c in chosen if c not in groups]
        skips = branch_skips(self.task_id, downstream_map(self), followed)
        print(f"Following branch {', '.join(chosen) or '(none)'}", flush=True)
        context["ti"].skip_task_ids = sorted(skips)
        return branches_to_execute

    def execute(self, context: Context) -> Any:
        return self.do_branch(context, self.choose_branch(context))


class BranchPythonOperator(PythonOperator, BaseBranchOperator):
    """Call ``python_callable``; it returns the task id(s) to follow (or None for none)."""

    def execute(self, context: Context) -> Any:
        return self.do_branch(context, super().execute(context))


class ShortCircuitOperator(PythonOperator):
    """Call ``python_callable``; a falsy result skips what lies downstream.

    With ``ignore_downstream_trigger_rules=True`` (the default) every downstream task is
    skipped, whatever its trigger rule. With False only the direct downstream tasks are,
    and the trigger rules of the tasks beyond them decide.
    """

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context: Context) -> Any:
        return self.short_circuit(context, super().execute(context))

    def short_circuit(self, context: Context, condition: Any) -> Any:
        """Skip downstream when ``condition`` is falsy; return it when it is truthy."""
        print(f"Condition result is {condition!r}", flush=True)
        if condition:
            print("Proceeding with downstream tasks...", flush=True)
            return condition
        skips = short_circuit_skips(
            self.task_id,
            downstream_map(self),
            ignore_downstream_trigger_rules=self.ignore_downstream_trigger_rules,
        )
        context["ti"].skip_task_ids = sorted(skips)
        # As in Airflow, a short circuit pushes no XCom: it returns nothing.
        return None
