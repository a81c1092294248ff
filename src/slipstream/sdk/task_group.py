"""``TaskGroup`` and ``@task_group``: named, nestable groups of the tasks of one DAG.

A group is an authoring and display concept only, as in Airflow: it prefixes the ids of the
tasks created inside it (``extract.clean``, ``outer.inner.clean``), lends them its
``default_args``, and stands for its tasks in dependencies. The scheduler never sees a group;
the edges ``tg1 >> tg2`` draws are ordinary task-to-task edges, from the leaves of ``tg1`` (its
tasks with nothing downstream inside it) to the roots of ``tg2`` (its tasks with nothing
upstream inside it). The roots and leaves are taken when the dependency is written, so tasks
added to a group afterwards are not linked, and an empty group links nothing (both as in
Airflow).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, overload

from slipstream.errors import DagDefinitionError, DuplicateTaskIdError
from slipstream.sdk.dag import DagContext, validate_key
from slipstream.sdk.dependencies import DependencyMixin

if TYPE_CHECKING:
    from slipstream.sdk.baseoperator import BaseOperator
    from slipstream.sdk.dag import DAG

DEFAULT_UI_COLOR = "CornflowerBlue"
DEFAULT_UI_FGCOLOR = "#000"


class TaskGroupContext:
    """The stack of groups opened with ``with TaskGroup(...)`` (or by a ``@task_group`` call)."""

    _stack: list[TaskGroup] = []

    @classmethod
    def push(cls, group: TaskGroup) -> None:
        cls._stack.append(group)

    @classmethod
    def pop(cls) -> TaskGroup | None:
        return cls._stack.pop() if cls._stack else None

    @classmethod
    def current(cls, dag: DAG | None) -> TaskGroup | None:
        """The innermost open group of ``dag``, else ``dag``'s root group.

        Without a DAG, the innermost open group of any DAG: a task created inside
        ``with TaskGroup(..., dag=d)`` joins ``d`` even outside ``with d``.
        """
        if dag is None:
            return cls._stack[-1] if cls._stack else None
        for group in reversed(cls._stack):
            if group.dag is dag:
                return group
        return dag.task_group


def resolve_group(
    dag: DAG | None, task_group: TaskGroup | None
) -> tuple[DAG | None, TaskGroup | None]:
    """The DAG and group a new task belongs to, from its arguments and the open contexts.

    ``dag`` is the task's ``dag=`` argument or the current DAG; ``task_group`` its
    ``task_group=`` argument. Used both to place the task and to pick its ``default_args``,
    so the two always agree.
    """
    group = task_group or TaskGroupContext.current(dag)
    if group is None:
        return dag, None
    if dag is not None and group.dag is not dag:
        raise DagDefinitionError(
            f"TaskGroup {group.group_id!r} is in DAG {group.dag.dag_id!r}, "
            f"not in DAG {dag.dag_id!r}"
        )
    return group.dag, group


class TaskGroup(DependencyMixin):
    """A group of tasks, with Airflow's constructor arguments and meanings.

    Use it as a context manager: every task (and group) created inside the ``with`` block
    joins it. Each DAG has a root group (``dag.task_group``, ``group_id`` None) holding the
    tasks and groups created outside any group.
    """

    def __init__(
        self,
        group_id: str,
        prefix_group_id: bool = True,
        parent_group: TaskGroup | None = None,
        dag: DAG | None = None,
        default_args: dict[str, Any] | None = None,
        tooltip: str = "",
        ui_color: str = DEFAULT_UI_COLOR,
        ui_fgcolor: str = DEFAULT_UI_FGCOLOR,
        add_suffix_on_collision: bool = False,
    ) -> None:
        label = validate_key("group_id", group_id)
        if parent_group is not None:
            if dag is not None and parent_group.dag is not dag:
                raise DagDefinitionError(
                    f"TaskGroup {group_id!r}: its parent group is in DAG "
                    f"{parent_group.dag.dag_id!r}, not in DAG {dag.dag_id!r}"
                )
        else:
            parent_group = TaskGroupContext.current(dag or DagContext.current())
        if parent_group is None:
            raise DagDefinitionError(
                f"TaskGroup {group_id!r} is not in a DAG: create it inside `with DAG(...)` "
                "or pass dag="
            )
        self.dag: DAG = parent_group.dag
        self.parent_group: TaskGroup | None = parent_group
        self.prefix_group_id = prefix_group_id
        self.tooltip = tooltip
        self.ui_color = ui_color
        self.ui_fgcolor = ui_fgcolor
        # a group's default_args extend its parent's, which extend the DAG's (see _defaults)
        self.default_args: dict[str, Any] = {
            **parent_group.default_args,
            **(default_args or {}),
        }
        self.children: dict[str, BaseOperator | TaskGroup] = {}
        self.used_group_ids: set[str] = parent_group.used_group_ids

        if add_suffix_on_collision:
            label = self._free_label(label, parent_group)
        self._label: str | None = label
        self._group_id: str | None = validate_key("group_id", parent_group.child_id(label))
        self._check_free(self._group_id)
        self.used_group_ids.add(self._group_id)
        parent_group.children[self._group_id] = self

    @classmethod
    def create_root(cls, dag: DAG) -> TaskGroup:
        """The root group of ``dag``: no id, no prefix; it holds the top-level tasks."""
        root = cls.__new__(cls)
        root.dag = dag
        root.parent_group = None
        root.prefix_group_id = True
        root.tooltip = ""
        root.ui_color = DEFAULT_UI_COLOR
        root.ui_fgcolor = DEFAULT_UI_FGCOLOR
        # the DAG's own default_args are applied apart, before every group's
        root.default_args = {}
        root.children = {}
        # one set per DAG, shared by all its groups: the ids of every group in the DAG
        root.used_group_ids = set()
        root._label = None
        root._group_id = None
        return root

    def __repr__(self) -> str:
        return f"<TaskGroup: {self._group_id}>"

    # -- ids ------------------------------------------------------------------------
    @property
    def group_id(self) -> str | None:
        """The full id (``outer.inner``), or None for a DAG's root group."""
        return self._group_id

    @property
    def label(self) -> str | None:
        """The id as written, without the parent groups' prefix."""
        return self._label

    @property
    def is_root(self) -> bool:
        return self._group_id is None

    def child_id(self, label: str) -> str:
        """The full id of a task or group named ``label`` created inside this group."""
        if self.prefix_group_id and self._group_id:
            return f"{self._group_id}.{label}"
        return label

    def _check_free(self, group_id: str) -> None:
        if group_id in self.used_group_ids:
            raise DuplicateTaskIdError(
                f"DAG {self.dag.dag_id!r} already has a TaskGroup with group_id {group_id!r}"
            )
        if group_id in self.dag.task_dict:
            raise DuplicateTaskIdError(
                f"DAG {self.dag.dag_id!r} already has a task with task_id {group_id!r}; "
                f"TaskGroup {group_id!r} cannot share it"
            )

    def _free_label(self, label: str, parent: TaskGroup) -> str:
        """``label``, or ``label__1``, ``label__2``... the first one not yet used."""
        taken = self.used_group_ids | set(self.dag.task_dict)
        candidate, n = label, 0
        while parent.child_id(candidate) in taken:
            n += 1
            candidate = f"{label}__{n}"
        return candidate

    # -- members --------------------------------------------------------------------
    def add(self, task: BaseOperator) -> None:
        """Record ``task`` as a child; the DAG checks its id (``DAG.add_task``)."""
        self.children[task.task_id] = task

    def __iter__(self) -> Iterator[BaseOperator]:
        """Every task of the group, those of nested groups included."""
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child
            else:
                yield child

    def get_child_by_label(self, label: str) -> BaseOperator | TaskGroup:
        return self.children[self.child_id(label)]

    def get_task_group_dict(self) -> dict[str, TaskGroup]:
        """Every group nested in this one, by full id (this one excluded)."""
        found: dict[str, TaskGroup] = {}
        for child in self.children.values():
            if isinstance(child, TaskGroup) and child._group_id is not None:
                found[child._group_id] = child
                found.update(child.get_task_group_dict())
        return found

    def get_roots(self) -> list[BaseOperator]:
        """The group's tasks with no upstream task inside the group."""
        tasks = list(self)
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if t.upstream_task_ids.isdisjoint(ids)]

    def get_leaves(self) -> list[BaseOperator]:
        """The group's tasks with no downstream task inside the group."""
        tasks = list(self)
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if t.downstream_task_ids.isdisjoint(ids)]

    @property
    def roots(self) -> list[BaseOperator]:
        return self.get_roots()

    @property
    def leaves(self) -> list[BaseOperator]:
        return self.get_leaves()

    # the hooks BaseOperator's dependency methods use for anything that is not a task
    def roots_for_dependency(self) -> list[BaseOperator]:
        return self.get_roots()

    def leaves_for_dependency(self) -> list[BaseOperator]:
        return self.get_leaves()

    # -- dependencies ---------------------------------------------------------------
    def set_downstream(self, other: Any) -> None:
        for task in self.get_leaves():
            task.set_downstream(other)

    def set_upstream(self, other: Any) -> None:
        for task in self.get_roots():
            task.set_upstream(other)

    # -- context manager ------------------------------------------------------------
    def __enter__(self) -> TaskGroup:
        TaskGroupContext.push(self)
        return self

    def __exit__(self, *exc: object) -> None:
        TaskGroupContext.pop()


class TaskGroupDecorator:
    """What ``@task_group`` returns: each call builds a new group from the function's body."""

    def __init__(self, func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        self.function = func
        self.kwargs = kwargs
        functools.update_wrapper(self, func)

    def override(self, **kwargs: Any) -> TaskGroupDecorator:
        return TaskGroupDecorator(self.function, {**self.kwargs, **kwargs})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Build the group; return what the function returned, or the group if nothing.

        Returning a task (or its output) lets ``extract() >> load()`` bind to that task, as in
        Airflow; a function returning nothing stands for the whole group.
        """
        try:
            inspect.signature(self.function).bind(*args, **kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"@task_group {self.function.__name__}: {exc}") from None
        options = dict(self.kwargs)
        options.setdefault("group_id", self.function.__name__)
        # calling the same group function twice gives ``name``, ``name__1``... as in Airflow
        options.setdefault("add_suffix_on_collision", True)
        group = TaskGroup(**options)
        if not group.tooltip and self.function.__doc__:
            group.tooltip = inspect.cleandoc(self.function.__doc__)
        with group:
            result = self.function(*args, **kwargs)
        return group if result is None else result


@overload
def task_group(python_callable: Callable[..., Any]) -> TaskGroupDecorator: ...
@overload
def task_group(
    python_callable: str | None = None, **kwargs: Any
) -> Callable[[Callable[..., Any]], TaskGroupDecorator]: ...
def task_group(python_callable: Callable[..., Any] | str | None = None, **kwargs: Any) -> Any:
    """``@task_group``, ``@task_group(group_id=..., tooltip=..., default_args=...)``.

    The keyword arguments are :class:`TaskGroup`'s; ``group_id`` defaults to the function's
    name and ``tooltip`` to its docstring.
    """
    if isinstance(python_callable, str):
        # ``@task_group("name")``
        kwargs["group_id"] = python_callable
        python_callable = None

    def wrap(func: Callable[..., Any]) -> TaskGroupDecorator:
        return TaskGroupDecorator(func, kwargs)

    return wrap(python_callable) if python_callable is not None else wrap
