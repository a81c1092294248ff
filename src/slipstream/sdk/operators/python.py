"""``PythonOperator``: call a Python function, passing it the context names it asks for."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slipstream.errors import DagDefinitionError
from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.context import Context


def determine_kwargs(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], context: Context
) -> dict[str, Any]:
    """The keyword arguments for ``func``: its ``op_kwargs`` plus the context names it accepts.

    As in Airflow: a function with ``**kwargs`` gets the whole context; otherwise only the
    context keys matching its own parameter names (and not already given) are passed.
    """
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    result = dict(kwargs)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        for key, value in context.items():
            result.setdefault(key, value)
        return result
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    taken = {p.name for p in positional[: len(args)]}
    for p in params:
        if p.name in context and p.name not in taken and p.name not in result:
            result[p.name] = context[p.name]
    return result


class PythonOperator(BaseOperator):
    template_fields = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
    ui_color = "#ffefeb"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: dict[str, Any] | None = None,
        templates_exts: Sequence[str] | None = None,
        show_return_value_in_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise DagDefinitionError(f"task {self.task_id!r}: python_callable must be callable")
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})
        self.templates_dict = templates_dict
        if templates_exts:
            self.template_ext = tuple(templates_exts)  # type: ignore[misc]
        self.show_return_value_in_logs = show_return_value_in_logs

    def execute(self, context: Context) -> Any:
        context["templates_dict"] = self.templates_dict
        kwargs = determine_kwargs(self.python_callable, self.op_args, self.op_kwargs, context)
        result = self.python_callable(*self.op_args, **kwargs)
        if self.show_return_value_in_logs:
            print(f"Done. Returned value was: {result!r}")
        return result
