"""``BaseOperator``: one task of a DAG, with Airflow's arguments and dependency operators."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from slipstream.errors import DagDefinitionError
from slipstream.sdk._defaults import apply_defaults
from slipstream.sdk.dag import DAG, DagContext, validate_key
from slipstream.sdk.dependencies import DependencyMixin
from slipstream.sdk.param import ParamsDict
from slipstream.sdk.task_group import resolve_group
from slipstream.sdk.templating import render_value
from slipstream.trigger_rule import TriggerRule

if TYPE_CHECKING:
    from slipstream.sdk.context import Context
    from slipstream.sdk.task_group import TaskGroup
    from slipstream.sdk.xcom_arg import XComArg

DependencyTarget = "BaseOperator | XComArg | Sequence[BaseOperator | XComArg]"

WEIGHT_RULES = ("downstream", "upstream", "absolute")


class BaseOperator(DependencyMixin):
    """Base of every operator. Subclasses implement :meth:`execute`."""

    template_fields: ClassVar[Sequence[str]] = ()
    template_ext: ClassVar[Sequence[str]] = ()
    template_fields_renderers: ClassVar[dict[str, str]] = {}
    ui_color: ClassVar[str] = "#fff"
    ui_fgcolor: ClassVar[str] = "#000"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "__slipstream_defaults_applied__", False):
            cls.__init__ = apply_defaults(init)  # type: ignore[method-assign]

    @apply_defaults
    def __init__(
        self,
        *,
        task_id: str,
        owner: str = "slipstream",
        email: str | Iterable[str] | None = None,
        email_on_failure: bool = True,
        email_on_retry: bool = True,
        retries: int = 0,
        retry_delay: timedelta | float = timedelta(seconds=300),
        retry_exponential_backoff: bool = False,
        max_retry_delay: timedelta | float | None = None,
        execution_timeout: timedelta | float | None = None,
        priority_weight: int = 1,
        weight_rule: str = "downstream",
        pool: str = "default_pool",
        pool_slots: int = 1,
        queue: str = "default",
        trigger_rule: str | TriggerRule = TriggerRule.ALL_SUCCESS,
        depends_on_past: bool = False,
        wait_for_downstream: bool = False,
        params: dict[str, Any] | None = None,
        default_args: dict[str, Any] | None = None,
        doc_md: str | None = None,
        doc: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        do_xcom_push: bool = True,
        multiple_outputs: bool = False,
        on_success_callback: Callable[..., Any] | None = None,
        on_failure_callback: Callable[..., Any] | None = None,
        on_retry_callback: Callable[..., Any] | None = None,
        on_execute_callback: Callable[..., Any] | None = None,
        dag: DAG | None = None,
        task_group: TaskGroup | None = None,
        **kwargs: Any,
    ) -> None:
        validate_key("task_id", task_id)
        dag, self.task_group = resolve_group(dag or DagContext.current(), task_group)
        # inside a TaskGroup the id carries the group's: ``extract.clean``, as in Airflow
        if self.task_group is not None:
            task_id = validate_key("task_id", self.task_group.child_id(task_id))
        self.task_id = task_id
        if kwargs:
            names = ", ".join(sorted(kwargs))
            raise DagDefinitionError(
                f"invalid arguments were passed to {type(self).__name__} (task_id: {task_id}): {names}"
            )
        self.owner = owner
        self.email = email
        self.email_on_failure = email_on_failure
        self.email_on_retry = email_on_retry
        self.retries = _non_negative_int("retries", retries, task_id)
        self.retry_delay = _as_timedelta("retry_delay", retry_delay, task_id)
        self.retry_exponential_backoff = bool(retry_exponential_backoff)
        self.max_retry_delay = (
            None
            if max_retry_delay is None
            else _as_timedelta("max_retry_delay", max_retry_delay, task_id)
        )
        self.execution_timeout = (
            None
            if execution_timeout is None
            else _as_timedelta("execution_timeout", execution_timeout, task_id)
        )
        if not isinstance(priority_weight, int) or isinstance(priority_weight, bool):
            raise DagDefinitionError(f"task {task_id!r}: priority_weight must be an integer")
        self.priority_weight = priority_weight
        if weight_rule not in WEIGHT_RULES:
            raise DagDefinitionError(
                f"task {task_id!r}: weight_rule must be one of {', '.join(WEIGHT_RULES)}, not {weight_rule!r}"
            )
        self.weight_rule = weight_rule
        self.pool = validate_key("pool", pool)
        self.pool_slots = _non_negative_int("pool_slots", pool_slots, task_id)
        if self.pool_slots < 1:
            raise DagDefinitionError(f"task {task_id!r}: pool_slots must be at least 1")
        self.queue = queue
        try:
            self.trigger_rule = TriggerRule(trigger_rule)
        except ValueError:
            valid = ", ".join(r.value for r in TriggerRule)
            raise DagDefinitionError(
                f"task {task_id!r}: unknown trigger_rule {trigger_rule!r} (valid: {valid})"
            ) from None
        self.depends_on_past = bool(depends_on_past or wait_for_downstream)
        self.wait_for_downstream = bool(wait_for_downstream)
        self.params = ParamsDict(params)
        self.doc_md = doc_md or doc
        self.start_date = start_date
        self.end_date = end_date
        self.do_xcom_push = do_xcom_push
        self.multiple_outputs = multiple_outputs
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.on_retry_callback = on_retry_callback
        self.on_execute_callback = on_execute_callback
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self._dag: DAG | None = None
        if dag is not None:
            self.dag = dag

    def __repr__(self) -> str:
        return f"<Task({type(self).__name__}): {self.task_id}>"

    # -- DAG membership ---------------------------------------------------------------
    @property
    def dag(self) -> DAG:
        if self._dag is None:
            raise DagDefinitionError(f"task {self.task_id!r} is not in a DAG")
        return self._dag

    @dag.setter
    def dag(self, dag: DAG) -> None:
        if self._dag is dag:
            return
        if self._dag is not None:
            raise DagDefinitionError(
                f"task {self.task_id!r} is already in DAG {self._dag.dag_id!r}; it cannot move to {dag.dag_id!r}"
            )
        dag.add_task(self)
        self._dag = dag
        # a task that joins its DAG late (through a dependency) joins the DAG's root group
        if self.task_group is None:
            self.task_group = dag.task_group
        self.task_group.add(self)
        # task params extend the DAG's: a task-level value wins
        merged = ParamsDict()
        merged.update(dag.params)
        merged.update(self.params)
        self.params = merged

    @property
    def has_dag(self) -> bool:
        return self._dag is not None

    @property
    def dag_id(self) -> str:
        return self._dag.dag_id if self._dag is not None else ""

    @property
    def task_type(self) -> str:
        return type(self).__name__

    @property
    def upstream_list(self) -> list[BaseOperator]:
        return [self.dag.task_dict[t] for t in sorted(self.upstream_task_ids)]

    @property
    def downstream_list(self) -> list[BaseOperator]:
        return [self.dag.task_dict[t] for t in sorted(self.downstream_task_ids)]

    @property
    def output(self) -> XComArg:
        """The return value of this task, as an argument for downstream TaskFlow tasks."""
        from slipstream.sdk.xcom_arg import XComArg

        return XComArg(self)

    # -- dependencies -----------------------------------------------------------------
    def set_downstream(self, other: Any) -> None:
        for task in _operators(other):
            _link(self, task)

    def set_upstream(self, other: Any) -> None:
        for task in _operators(other, upstream=True):
            _link(task, self)

    # -- running ----------------------------------------------------------------------
    def render_template_fields(self, context: Context) -> None:
        """Render every field in ``template_fields`` in place, with ``context``."""
        env = self.dag.get_template_env() if self._dag is not None else None
        if env is None:
            from slipstream.sdk.templating import make_environment

            env = make_environment(None)
        for name in self.template_fields:
            value = getattr(self, name)
            if value is None:
                continue
            setattr(
                self,
                name,
                render_value(
                    value, context, env, tuple(self.template_ext), f"{self.task_id}.{name}"
                ),
            )

    def rendered_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.template_fields}

    def pre_execute(self, context: Context) -> None:
        """Called before :meth:`execute`."""

    def execute(self, context: Context) -> Any:
        """Do the task's work; the return value becomes the ``return_value`` XCom."""
        raise NotImplementedError(f"{type(self).__name__} does not implement execute()")

    def post_execute(self, context: Context, result: Any = None) -> None:
        """Called after :meth:`execute` succeeded."""

    def on_kill(self) -> None:
        """Called when the task is being stopped (timeout or kill): release what it holds."""


def _operators(other: Any, *, upstream: bool = False) -> list[BaseOperator]:
    """The tasks ``other`` stands for in a dependency: for a TaskGroup, its leaves when it is
    the ``upstream`` side and its roots when it is the downstream side."""
    from slipstream.sdk.xcom_arg import XComArg

    items = other if isinstance(other, list | tuple | set) else [other]
    result: list[BaseOperator] = []
    for item in items:
        if isinstance(item, BaseOperator):
            result.append(item)
        elif isinstance(item, XComArg):
            result.append(item.operator)
        elif upstream and hasattr(item, "leaves_for_dependency"):
            result.extend(item.leaves_for_dependency())
        elif hasattr(item, "roots_for_dependency"):
            result.extend(item.roots_for_dependency())
        else:
            raise DagDefinitionError(
                f"cannot set a dependency on {item!r}: expected a task, a list of tasks or a task's output"
            )
    return result


def _link(upstream: BaseOperator, downstream: BaseOperator) -> None:
    # A task without a DAG joins the DAG of the task it is linked to, as in Airflow.
    if not upstream.has_dag and downstream.has_dag:
        upstream.dag = downstream.dag
    elif not downstream.has_dag and upstream.has_dag:
        downstream.dag = upstream.dag
    elif not upstream.has_dag and not downstream.has_dag:
        raise DagDefinitionError(
            f"cannot link {upstream.task_id!r} and {downstream.task_id!r}: neither is in a DAG"
        )
    if upstream.dag is not downstream.dag:
        raise DagDefinitionError(
            f"tasks {upstream.task_id!r} and {downstream.task_id!r} are in different DAGs"
        )
    if downstream.task_id in upstream.downstream_task_ids:
        return
    upstream.dag.check_cycle_on_edge(upstream.task_id, downstream.task_id)
    upstream.downstream_task_ids.add(downstream.task_id)
    downstream.upstream_task_ids.add(upstream.task_id)


def _non_negative_int(name: str, value: Any, task_id: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DagDefinitionError(
            f"task {task_id!r}: {name} must be a non-negative integer, not {value!r}"
        )
    return value


def _as_timedelta(name: str, value: Any, task_id: str) -> timedelta:
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    else:
        raise DagDefinitionError(
            f"task {task_id!r}: {name} must be a timedelta or seconds, not {value!r}"
        )
    if result < timedelta(0):
        raise DagDefinitionError(f"task {task_id!r}: {name} must not be negative")
    return result


def chain(*tasks: Any) -> None:
    """``chain(a, [b, c], d)``: a >> [b, c] >> d. Two adjacent lists must be of equal length
    and are linked pairwise, as in Airflow."""
    for up, down in itertools.pairwise(tasks):
        if isinstance(up, list | tuple) and isinstance(down, list | tuple):
            if len(up) != len(down):
                raise DagDefinitionError(
                    f"chain() got lists of different lengths ({len(up)} and {len(down)})"
                )
            for u, d in zip(up, down, strict=True):
                for op in _operators(u, upstream=True):
                    op.set_downstream(d)
        else:
            for op in _operators(up, upstream=True):
                op.set_downstream(down)


def cross_downstream(from_tasks: Sequence[Any], to_tasks: Sequence[Any]) -> None:
    """Every task of ``from_tasks`` upstream of every task of ``to_tasks``."""
    for task in from_tasks:
        for op in _operators(task, upstream=True):
            op.set_downstream(list(to_tasks))
