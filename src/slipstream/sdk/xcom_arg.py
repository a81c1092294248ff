"""``XComArg``: a task's future output, passed as an argument to a downstream task.

Passing one to a TaskFlow call both wires the dependency and, at run time, is replaced by
the XCom it refers to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slipstream.sdk.dependencies import DependencyMixin
from slipstream.sdk.taskinstance import XCOM_RETURN_KEY

if TYPE_CHECKING:
    from slipstream.sdk.baseoperator import BaseOperator
    from slipstream.sdk.context import Context


class XComArg(DependencyMixin):
    __slipstream_xcomarg__ = True

    def __init__(self, operator: BaseOperator, key: str = XCOM_RETURN_KEY) -> None:
        self.operator = operator
        self.key = key

    def __repr__(self) -> str:
        return f"XComArg({self.operator.task_id!r}, key={self.key!r})"

    def __getitem__(self, key: str) -> XComArg:
        """``result["total"]``: one key of a task with ``multiple_outputs``."""
        return XComArg(self.operator, key)

    def resolve(self, context: Context) -> Any:
        ti = context["ti"]
        return ti.xcom_pull(task_ids=self.operator.task_id, key=self.key)

    # dependencies behave as if written on the operator itself
    def set_upstream(self, other: Any) -> None:
        self.operator.set_upstream(other)

    def set_downstream(self, other: Any) -> None:
        self.operator.set_downstream(other)


def find_xcom_args(value: Any) -> list[XComArg]:
    """Every XComArg inside ``value`` (nested lists, tuples, dicts)."""
    found: list[XComArg] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, XComArg):
            found.append(item)
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return found
