"""Airflow's ``default_args``: values for operator arguments the task did not pass itself.

Every operator class's ``__init__`` is wrapped (see :class:`BaseOperator.__init_subclass__`) so
that, like in Airflow, an argument of *any* operator class in the hierarchy can come from the
DAG's ``default_args`` or the task's own ``default_args``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from slipstream.sdk.dag import DagContext
from slipstream.sdk.task_group import resolve_group

F = TypeVar("F", bound=Callable[..., None])

# where a task goes is never a default: a group's default_args cannot move its tasks
_PLACEMENT = ("task_id", "dag", "task_group")


def _param_names(init: Callable[..., None]) -> frozenset[str]:
    names = set()
    for p in inspect.signature(init).parameters.values():
        if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.add(p.name)
    return frozenset(names)


def apply_defaults(init: F) -> F:
    names = _param_names(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        defaults = _merged_defaults(kwargs)
        for name in names:
            if name not in kwargs and name in defaults and name not in _PLACEMENT:
                kwargs[name] = defaults[name]
        init(self, *args, **kwargs)

    wrapper.__slipstream_defaults_applied__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _merged_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The DAG's default_args, then its TaskGroups' (outermost first), then the task's own."""
    dag, group = resolve_group(kwargs.get("dag") or DagContext.current(), kwargs.get("task_group"))
    merged: dict[str, Any] = dict(dag.default_args) if dag is not None else {}
    if group is not None:
        # a group's default_args already hold its parents'
        merged.update(group.default_args)
    own = kwargs.get("default_args")
    if own:
        merged.update(own)
    return merged
