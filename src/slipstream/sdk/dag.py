"""``DAG`` and ``@dag``: a named graph of tasks with a schedule.

Pure authoring: building a DAG touches no database. Dependency cycles and duplicate task ids
are refused the moment they are written, naming the tasks involved.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, overload

import jinja2

from slipstream.decisions import TaskNode, topological_order
from slipstream.errors import CycleError, DagDefinitionError, DuplicateTaskIdError
from slipstream.sdk.param import DagParamRef, ParamsDict
from slipstream.timetables import Timetable, parse_timezone, timetable_from_schedule

if TYPE_CHECKING:
    from slipstream.sdk.baseoperator import BaseOperator
    from slipstream.sdk.task_group import TaskGroup

KEY_RE = re.compile(r"^[\w.-]+$")
MAX_ID_LENGTH = 250
ScheduleArg = str | timedelta | Timetable | None

# The time zone given to naive start dates. The process that imports DAG files sets it from
# the configuration before importing; authoring code never reads configuration itself.
_default_timezone: tzinfo | None = None


def set_default_timezone(name: str) -> None:
    global _default_timezone
    _default_timezone = parse_timezone(name)


def validate_key(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise DagDefinitionError(f"{kind} must be a non-empty string, not {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise DagDefinitionError(f"{kind} {value!r} is longer than {MAX_ID_LENGTH} characters")
    if not KEY_RE.match(value):
        raise DagDefinitionError(
            f"{kind} {value!r} may only contain letters, digits, dashes, dots and underscores"
        )
    return value


class DagContext:
    """The stack of DAGs opened with ``with DAG(...)`` (or inside a ``@dag`` function)."""

    _stack: list[DAG] = []
    #: while a DAG file is imported, the DAGs closed by a ``with`` block (or built by a
    #: ``@dag`` function), so that ``my_dag()`` on a line of its own defines a DAG, as in Airflow
    autoregistered: list[DAG] | None = None

    @classmethod
    def push(cls, dag: DAG) -> None:
        cls._stack.append(dag)

    @classmethod
    def pop(cls) -> DAG | None:
        return cls._stack.pop() if cls._stack else None

    @classmethod
    def current(cls) -> DAG | None:
        return cls._stack[-1] if cls._stack else None


def _localize(value: datetime | None, what: str, dag_id: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise DagDefinitionError(f"DAG {dag_id!r}: {what} must be a datetime, not {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=_default_timezone or parse_timezone("UTC"))
    return value


class DAG:
    """A DAG, with Airflow's constructor arguments and meanings."""

    def __init__(
        self,
        dag_id: str,
        description: str | None = None,
        schedule: ScheduleArg = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        default_args: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        max_active_runs: int | None = None,
        max_active_tasks: int | None = None,
        dagrun_timeout: timedelta | None = None,
        catchup: bool = False,
        tags: Iterable[str] | None = None,
        doc_md: str | None = None,
        template_searchpath: str | Iterable[str] | None = None,
        user_defined_macros: dict[str, Any] | None = None,
        user_defined_filters: dict[str, Callable[..., Any]] | None = None,
        template_undefined: type[jinja2.Undefined] = jinja2.StrictUndefined,
        render_template_as_native_obj: bool = False,
        jinja_environment_kwargs: dict[str, Any] | None = None,
        is_paused_upon_creation: bool | None = None,
        on_success_callback: Callable[..., Any] | None = None,
        on_failure_callback: Callable[..., Any] | None = None,
        owner_links: dict[str, str] | None = None,
        dag_display_name: str | None = None,
        auto_register: bool = True,
    ) -> None:
        self.dag_id = validate_key("dag_id", dag_id)
        self.description = description
        self.default_args: dict[str, Any] = dict(default_args or {})
        start_date = start_date if start_date is not None else self.default_args.get("start_date")
        end_date = end_date if end_date is not None else self.default_args.get("end_date")
        self.start_date = _localize(start_date, "start_date", dag_id)
        self.end_date = _localize(end_date, "end_date", dag_id)
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise DagDefinitionError(f"DAG {dag_id!r}: end_date is before start_date")
        self.timezone: tzinfo = (
            self.start_date.tzinfo
            if self.start_date is not None and self.start_date.tzinfo is not None
            else _default_timezone or parse_timezone("UTC")
        )
        self.schedule = schedule
        self.timetable: Timetable = timetable_from_schedule(schedule, self.timezone)
        if self.timetable.periodic and self.start_date is None:
            raise DagDefinitionError(
                f"DAG {dag_id!r} has schedule {self.timetable.summary!r} but no start_date"
            )
        self.params = ParamsDict(self.default_args.get("params"))
        self.params.update(ParamsDict(params))
        for name, limit in (
            ("max_active_runs", max_active_runs),
            ("max_active_tasks", max_active_tasks),
        ):
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise DagDefinitionError(f"DAG {dag_id!r}: {name} must be a positive integer")
        self.max_active_runs = max_active_runs
        self.max_active_tasks = max_active_tasks
        if dagrun_timeout is not None and not isinstance(dagrun_timeout, timedelta):
            raise DagDefinitionError(f"DAG {dag_id!r}: dagrun_timeout must be a timedelta")
        self.dagrun_timeout = dagrun_timeout
        self.catchup = bool(catchup)
        self.tags: list[str] = sorted(set(tags or []))
        self.doc_md = doc_md
        if isinstance(template_searchpath, str):
            template_searchpath = [template_searchpath]
        self.template_searchpath: list[str] = list(template_searchpath or [])
        self.user_defined_macros = dict(user_defined_macros or {})
        self.user_defined_filters = dict(user_defined_filters or {})
        self.template_undefined = template_undefined
        self.render_template_as_native_obj = render_template_as_native_obj
        self.jinja_environment_kwargs = dict(jinja_environment_kwargs or {})
        self.is_paused_upon_creation = is_paused_upon_creation
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.owner_links = dict(owner_links or {})
        self.dag_display_name = dag_display_name or dag_id
        self.auto_register = auto_register
        self.task_dict: dict[str, BaseOperator] = {}
        # The file that defined the DAG: where template files are searched first.
        self.fileloc: str = _caller_file()
        self._jinja_env: jinja2.Environment | None = None
        # task_group imports this module: importing it at the top would be a cycle
        from slipstream.sdk.task_group import TaskGroup

        #: the root group: the tasks and groups created outside any ``with TaskGroup``
        self.task_group: TaskGroup = TaskGroup.create_root(self)

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"

    # -- context manager ------------------------------------------------------------
    def __enter__(self) -> DAG:
        DagContext.push(self)
        return self

    def __exit__(self, *exc: object) -> None:
        DagContext.pop()
        if self.auto_register and DagContext.autoregistered is not None:
            DagContext.autoregistered.append(self)

    # -- tasks ----------------------------------------------------------------------
    @property
    def tasks(self) -> list[BaseOperator]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    @property
    def task_group_dict(self) -> dict[str, TaskGroup]:
        """Every TaskGroup of the DAG, by full group_id (the root group excluded)."""
        return self.task_group.get_task_group_dict()

    @property
    def owner(self) -> str:
        return ", ".join(sorted({t.owner for t in self.tasks})) or "slipstream"

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    def get_task(self, task_id: str) -> BaseOperator:
        from slipstream.errors import TaskNotFound

        try:
            return self.task_dict[task_id]
        except KeyError:
            raise TaskNotFound(f"DAG {self.dag_id!r} has no task {task_id!r}") from None

    def add_task(self, task: BaseOperator) -> None:
        existing = self.task_dict.get(task.task_id)
        if existing is task:
            return
        if existing is not None:
            raise DuplicateTaskIdError(
                f"DAG {self.dag_id!r} already has a task with task_id {task.task_id!r}"
            )
        if task.task_id in self.task_group.used_group_ids:
            raise DuplicateTaskIdError(
                f"DAG {self.dag_id!r} already has a TaskGroup with group_id {task.task_id!r}; "
                f"task {task.task_id!r} cannot share it"
            )
        self.task_dict[task.task_id] = task

    def add_tasks(self, tasks: Iterable[BaseOperator]) -> None:
        for task in tasks:
            task.dag = self

    @property
    def roots(self) -> list[BaseOperator]:
        return [t for t in self.tasks if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[BaseOperator]:
        return [t for t in self.tasks if not t.downstream_task_ids]

    def task_nodes(self) -> dict[str, TaskNode]:
        """The DAG as the scheduling decisions see it: ids, edges and rules, no code."""
        return {
            t.task_id: TaskNode(
                t.task_id,
                frozenset(t.upstream_task_ids),
                t.trigger_rule,
                t.depends_on_past,
                t.wait_for_downstream,
            )
            for t in self.tasks
        }

    def topological_sort(self) -> list[BaseOperator]:
        """Tasks in an order where every task comes after its upstream tasks."""
        return [self.task_dict[i] for i in topological_order(self.task_nodes())]

    def check_cycle_on_edge(self, upstream_id: str, downstream_id: str) -> None:
        """Refuse the edge ``upstream >> downstream`` if it closes a cycle, naming the path."""
        if upstream_id == downstream_id:
            raise CycleError(f"cycle in DAG {self.dag_id!r}: {upstream_id} -> {upstream_id}")
        # Is upstream reachable from downstream already? Then the new edge closes a loop.
        path = self._path(downstream_id, upstream_id)
        if path is not None:
            loop = " -> ".join([upstream_id, *path])
            raise CycleError(f"cycle in DAG {self.dag_id!r}: {loop}")

    def _path(self, start: str, goal: str) -> list[str] | None:
        parents: dict[str, str | None] = {start: None}
        stack = [start]
        while stack:
            node = stack.pop()
            if node == goal:
                path = [node]
                while (parent := parents[path[-1]]) is not None:
                    path.append(parent)
                return path[::-1]
            task = self.task_dict.get(node)
            for child in sorted(task.downstream_task_ids) if task else ():
                if child not in parents:
                    parents[child] = node
                    stack.append(child)
        return None

    def validate(self) -> None:
        """Whole-DAG checks run when the DAG file has been imported."""
        self.topological_sort()  # raises CycleError naming the loop
        for task in self.tasks:
            for other in task.upstream_task_ids | task.downstream_task_ids:
                if other not in self.task_dict:
                    raise DagDefinitionError(
                        f"task {task.task_id!r} depends on {other!r}, which is not in DAG {self.dag_id!r}"
                    )

    # -- templating -----------------------------------------------------------------
    def get_template_env(self) -> jinja2.Environment:
        if self._jinja_env is None:
            from slipstream.sdk.templating import make_environment

            self._jinja_env = make_environment(self)
        return self._jinja_env


def _caller_file() -> str:
    """The file of the first frame outside slipstream's SDK: the user's DAG file."""
    frame = inspect.currentframe()
    while frame is not None:
        filename = frame.f_code.co_filename
        if "/slipstream/sdk/" not in filename.replace("\\", "/"):
            return filename
        frame = frame.f_back
    return ""


@overload
def dag(func: Callable[..., Any]) -> Callable[..., DAG]: ...
@overload
def dag(
    func: None = None, **dag_kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., DAG]]: ...
def dag(func: Callable[..., Any] | None = None, **dag_kwargs: Any) -> Any:
    """Turn a function into a DAG factory: calling it builds the DAG from the function's body.

    The function's keyword arguments become DAG params (their defaults are the params'
    defaults), as in Airflow. ``dag_id`` defaults to the function's name.
    """

    def decorator(f: Callable[..., Any]) -> Callable[..., DAG]:
        signature = inspect.signature(f)

        @functools.wraps(f)
        def factory(*args: Any, **kwargs: Any) -> DAG:
            kw = dict(dag_kwargs)
            dag_id = kw.pop("dag_id", f.__name__)
            if "doc_md" not in kw and f.__doc__:
                kw["doc_md"] = inspect.cleandoc(f.__doc__)
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            params = dict(kw.pop("params", None) or {})
            for name, value in bound.arguments.items():
                params.setdefault(name, value)
            instance = DAG(dag_id, params=params, **kw)
            instance.fileloc = inspect.getsourcefile(f) or instance.fileloc
            with instance:
                f(**{name: DagParamRef(name) for name in bound.arguments})
            instance.validate()
            return instance

        return factory

    return decorator(func) if func is not None else decorator
