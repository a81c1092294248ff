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
from slipstream.sdk.context import Context
from slipstream.sdk.dag import DagContext
from slipstream.sdk.operators.python import PythonOperator, determine_kwargs
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
        self, func: Callable[..., Any], operator_class: type[PythonOperator], kwargs: dict[str, Any]
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
        dag = options.get("dag") or DagContext.current()
        if dag is not None:
            task_id = _unique_task_id(task_id, dag.task_ids)
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


def _unique_task_id(task_id: str, existing: Sequence[str]) -> str:
    """Calling one ``@task`` twice in a DAG gives ``name``, ``name__1``, ``name__2``..."""
    if task_id not in existing:
        return task_id
    n = 1
    while f"{task_id}__{n}" in existing:
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


task = _TaskNamespace()
