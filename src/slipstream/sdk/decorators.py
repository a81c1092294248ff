"""TaskFlow: ``@task`` turns a function into a task; calling it inside a DAG adds the task.

Arguments that are other tasks' outputs (:class:`XComArg`) become dependencies and are
replaced by the XCom values at run time. The return value is the ``return_value`` XCom; with
``multiple_outputs`` each key of a returned dict is also pushed as its own XCom.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slipstream.errors import DagDefinitionError, XComError
from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.context import Context
from slipstream.sdk.dag import DagContext
from slipstream.sdk.operators.bash import BashOperator
from slipstream.sdk.operators.branch import BaseBranchOperator, ShortCircuitOperator
from slipstream.sdk.operators.python import PythonOperator, determine_kwargs
from slipstream.sdk.sensors.python import DecoratedSensorOperator
from slipstream.sdk.task_group import TaskGroup, resolve_group
from slipstream.sdk.templating import render_value
from slipstream.sdk.xcom_arg import XComArg, find_xcom_args


class DecoratedPythonOperator(PythonOperator):
    """The operator behind a ``@task`` function."""

    custom_operator_name = "@task"

    def __init__(
        self, *, python_callable: Callable[..., Any], multiple_outputs: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(
            python_callable=python_callable, multiple_outputs=multiple_outputs, **kwargs
        )
        for arg in find_xcom_args([self.op_args, self.op_kwargs]):
            self.set_upstream(arg.operator)

    def execute(self, context: Context) -> Any:
        context["templates_dict"] = self.templates_dict
        kwargs = determine_kwargs(self.python_callable, self.op_args, self.op_kwargs, context)
        result = self.python_callable(*self.op_args, **kwargs)
        if self.multiple_outputs:
            if not isinstance(result, Mapping):
                raise XComError(
                    f"task {self.task_id!r} has multiple_outputs=True but returned "
                    f"{type(result).__name__}, not a dict"
                )
            ti = context["ti"]
            for key, value in result.items():
                if not isinstance(key, str):
                    raise XComError(
                        f"task {self.task_id!r}: multiple_outputs keys must be strings, not {key!r}"
                    )
                ti.xcom_push(key, value)
        return result


class DecoratedBranchOperator(DecoratedPythonOperator, BaseBranchOperator):
    """``@task.branch``: the function returns the task id(s) to follow, or None."""

    custom_operator_name = "@task.branch"

    def execute(self, context: Context) -> Any:
        return self.do_branch(context, super().execute(context))


class DecoratedShortCircuitOperator(DecoratedPythonOperator, ShortCircuitOperator):
    """``@task.short_circuit``: a falsy return value skips what lies downstream."""

    custom_operator_name = "@task.short_circuit"

    def execute(self, context: Context) -> Any:
        return self.short_circuit(context, super().execute(context))


class DecoratedBashOperator(DecoratedPythonOperator, BashOperator):
    """``@task.bash``: the function returns a bash command, which is rendered as a template
    and run as a BashOperator runs it (Airflow 2.9+); its last output line is the XCom."""

    custom_operator_name = "@task.bash"
    # bash_command is rendered once the function has returned it, not before. (The ignore:
    # the bases' template_fields are tuples of three, a length mypy holds them to.)
    template_fields = ("op_args", "op_kwargs", "env", "cwd")  # type: ignore[assignment]
    template_fields_renderers = {"op_args": "py", "op_kwargs": "py", "env": "json"}
    ui_color = BashOperator.ui_color

    def __init__(self, *, python_callable: Callable[..., Any], **kwargs: Any) -> None:
        # The XCom is one line of output: there are no keys to split (Airflow ignores it too).
        kwargs["multiple_outputs"] = False
        kwargs.setdefault("bash_command", "")
        super().__init__(python_callable=python_callable, **kwargs)

    def execute(self, context: Context) -> Any:
        kwargs = determine_kwargs(self.python_callable, self.op_args, self.op_kwargs, context)
        command = self.python_callable(*self.op_args, **kwargs)
        if not isinstance(command, str) or not command.strip():
            raise TypeError(
                f"@task.bash {self.task_id!r} must return the bash command as a non-empty "
                f"string, not {command!r}"
            )
        self.bash_command = render_value(
            command,
            context,
            self.dag.get_template_env(),
            tuple(self.template_ext),
            f"{self.task_id}.bash_command",
        )
        return BashOperator.execute(self, context)


def _infers_multiple_outputs(func: Callable[..., Any]) -> bool:
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: fall back to the default
        return False
    ret = hints.get("return")
    origin = typing.get_origin(ret) or ret
    return origin in (dict, typing.Dict, Mapping)  # noqa: UP006


class TaskDecorator:
    """What ``@task`` returns: call it to add a task; ``.override()`` changes its arguments."""

    def __init__(
        self, func: Callable[..., Any], operator_class: type[BaseOperator], kwargs: dict[str, Any]
    ) -> None:
        self.function = func
        self.operator_class = operator_class
        self.kwargs = kwargs
        functools.update_wrapper(self, func)

    def override(self, **kwargs: Any) -> TaskDecorator:
        return TaskDecorator(self.function, self.operator_class, {**self.kwargs, **kwargs})

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        try:
            inspect.signature(self.function).bind(*args, **kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"@task {self.function.__name__}: {exc}") from None
        options = dict(self.kwargs)
        task_id = options.pop("task_id", None) or self.function.__name__
        dag, group = resolve_group(
            options.get("dag") or DagContext.current(), options.get("task_group")
        )
        if dag is not None:
            task_id = _unique_task_id(task_id, dag.task_ids, group)
        if "multiple_outputs" not in options:
            options["multiple_outputs"] = _infers_multiple_outputs(self.function)
        if "doc_md" not in options and self.function.__doc__:
            options["doc_md"] = inspect.cleandoc(self.function.__doc__)
        operator = self.operator_class(
            task_id=task_id,
            python_callable=self.function,
            op_args=list(args),
            op_kwargs=kwargs,
            **options,
        )
        return XComArg(operator)


def _unique_task_id(task_id: str, existing: Sequence[str], group: TaskGroup | None = None) -> str:
    """Calling one ``@task`` twice in a DAG gives ``name``, ``name__1``, ``name__2``...

    In a TaskGroup the prefixed id (``group.name``) must be free, but the label is returned:
    the operator adds the group's prefix itself.
    """

    def full(label: str) -> str:
        return group.child_id(label) if group is not None else label

    if full(task_id) not in existing:
        return task_id
    n = 1
    while full(f"{task_id}__{n}") in existing:
        n += 1
    return f"{task_id}__{n}"


class _TaskNamespace:
    """``task`` itself: ``@task``, ``@task(...)``, ``@task.python``."""

    def __call__(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        if python_callable is not None and not callable(python_callable):
            raise DagDefinitionError("@task takes keyword arguments only, e.g. @task(retries=2)")

        def wrap(func: Callable[..., Any]) -> TaskDecorator:
            return TaskDecorator(func, DecoratedPythonOperator, kwargs)

        return wrap(python_callable) if python_callable is not None else wrap

    python = __call__

    def sensor(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        """``@task.sensor(poke_interval=..., timeout=..., mode=...)``: the function is the
        sensor's poke; it returns a bool or a ``PokeReturnValue``."""

        def wrap(func: Callable[..., Any]) -> TaskDecorator:
            return TaskDecorator(func, DecoratedSensorOperator, kwargs)

        return wrap(python_callable) if python_callable is not None else wrap

    def branch(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        """``@task.branch``: the function returns the task id(s) to follow; the direct
        downstream tasks it does not name are skipped."""
        return _decorate(DecoratedBranchOperator, python_callable, kwargs)

    def short_circuit(
        self, python_callable: Callable[..., Any] | None = None, **kwargs: Any
    ) -> Any:
        """``@task.short_circuit(ignore_downstream_trigger_rules=True)``: a falsy return
        value skips what lies downstream."""
        return _decorate(DecoratedShortCircuitOperator, python_callable, kwargs)

    def bash(self, python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        """``@task.bash``: the function returns the bash command to run."""
        return _decorate(DecoratedBashOperator, python_callable, kwargs)


def _decorate(
    operator_class: type[BaseOperator],
    python_callable: Callable[..., Any] | None,
    kwargs: dict[str, Any],
) -> Any:
    """``@task.x`` and ``@task.x(...)`` alike: a TaskDecorator, or a function that makes one."""
    if python_callable is not None and not callable(python_callable):
        raise DagDefinitionError("@task takes keyword arguments only, e.g. @task(retries=2)")

    def wrap(func: Callable[..., Any]) -> TaskDecorator:
        return TaskDecorator(func, operator_class, kwargs)

    return wrap(python_callable) if python_callable is not None else wrap


task = _TaskNamespace()
