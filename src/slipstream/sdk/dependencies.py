"""``>>`` and ``<<`` for everything that can sit in a dependency: tasks, task outputs, groups.

Each such class says what ``set_upstream``/``set_downstream`` mean for it; the operators are
written once, here.
"""

from __future__ import annotations

from typing import Any, Self


class DependencyMixin:
    def set_upstream(self, other: Any) -> None:
        raise NotImplementedError

    def set_downstream(self, other: Any) -> None:
        raise NotImplementedError

    def __rshift__(self, other: Any) -> Any:
        """``self >> other``: other runs after self; returns other, so chains read left to right."""
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        """``self << other``: other runs before self."""
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Self:
        """``[a, b] >> self``."""
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> Self:
        """``[a, b] << self``."""
        self.set_downstream(other)
        return self
