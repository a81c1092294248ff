"""``PythonSensor`` and the operator behind ``@task.sensor``: a Python function is the poke."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slipstream.errors import DagDefinitionError, XComError
from slipstream.sdk.context import Context
from slipstream.sdk.operators.python import determine_kwargs
from slipstream.sdk.sensors.base import BaseSensorOperator, PokeReturnValue
from slipstream.sdk.xcom_arg import find_xcom_args


class PythonSensor(BaseSensorOperator):
    """Waits until ``python_callable`` returns true (or a done :class:`PokeReturnValue`).

    The callable gets ``op_args``, ``op_kwargs`` and the context names it asks for, exactly
    as a :class:`~slipstream.sdk.operators.PythonOperator`'s callable does.
    """

    template_fields = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise DagDefinitionError(f"task {self.task_id!r}: python_callable must be callable")
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})
        self.templates_dict = templates_dict

    def poke(self, context: Context) -> bool | PokeReturnValue:
        context["templates_dict"] = self.templates_dict
        name = getattr(self.python_callable, "__name__", repr(self.python_callable))
        print(f"Poking callable: {name}")
        kwargs = determine_kwargs(self.python_callable, self.op_args, self.op_kwargs, context)
        result = self.python_callable(*self.op_args, **kwargs)
        return result if isinstance(result, PokeReturnValue) else bool(result)


class DecoratedSensorOperator(PythonSensor):
    """The operator behind a ``@task.sensor`` function: its arguments may be other tasks'
    outputs, and a ``PokeReturnValue``'s value becomes the task's XCom."""

    custom_operator_name = "@task.sensor"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for arg in find_xcom_args([self.op_args, self.op_kwargs]):
            self.set_upstream(arg.operator)

    def execute(self, context: Context) -> Any:
        result = super().execute(context)
        if self.multiple_outputs and result is not None:
            if not isinstance(result, Mapping):
                raise XComError(
                    f"task {self.task_id!r} has multiple_outputs=True but its PokeReturnValue "
                    f"held {type(result).__name__}, not a dict"
                )
            for key, value in result.items():
                context["ti"].xcom_push(str(key), value)
        return result
