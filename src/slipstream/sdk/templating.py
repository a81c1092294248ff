"""Jinja2 rendering of operators' ``template_fields``.

Strings are rendered; lists, tuples, dicts and sets are rendered item by item; a string ending
in one of the operator's ``template_ext`` (``.sh``, ``.sql``...) names a template file, found
next to the DAG file or under the DAG's ``template_searchpath``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.exceptions
import jinja2.nativetypes
import jinja2.sandbox

from slipstream.errors import TemplateError
from slipstream.sdk.param import DagParamRef

if TYPE_CHECKING:
    from slipstream.sdk.dag import DAG


class SandboxedEnvironment(jinja2.sandbox.SandboxedEnvironment):
    """Templates may read ``_private`` attributes (Airflow allows it) but never dunders."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not jinja2.sandbox.is_internal_attribute(obj, attr) and not attr.startswith("__")


def make_environment(dag: DAG | None) -> jinja2.Environment:
    searchpath: list[str] = []
    if dag is not None:
        if dag.fileloc:
            searchpath.append(os.path.dirname(os.path.abspath(dag.fileloc)))
        searchpath.extend(dag.template_searchpath)
    options: dict[str, Any] = {
        "loader": jinja2.FileSystemLoader(searchpath),
        "undefined": dag.template_undefined if dag is not None else jinja2.StrictUndefined,
        "extensions": ["jinja2.ext.do", "jinja2.ext.loopcontrols"],
        "cache_size": 0,
        "keep_trailing_newline": True,
    }
    if dag is not None:
        options.update(dag.jinja_environment_kwargs)
    env_cls: type[jinja2.Environment] = (
        jinja2.nativetypes.NativeEnvironment
        if dag is not None and dag.render_template_as_native_obj
        else SandboxedEnvironment
    )
    env = env_cls(**options)
    if dag is not None:
        env.globals.update(dag.user_defined_macros)
        env.filters.update(dag.user_defined_filters)
    env.filters.update(
        ds=lambda value: value.strftime("%Y-%m-%d"),
        ds_nodash=lambda value: value.strftime("%Y%m%d"),
        ts=lambda value: value.isoformat(),
        ts_nodash=lambda value: value.strftime("%Y%m%dT%H%M%S"),
    )
    return env


def render_value(
    value: Any,
    context: Mapping[str, Any],
    env: jinja2.Environment,
    template_ext: tuple[str, ...] = (),
    field: str = "",
) -> Any:
    """Render ``value`` (and whatever it contains) with ``context``."""
    if isinstance(value, DagParamRef):
        return context["params"][value.param_name]
    if isinstance(value, str):
        try:
            # as in Airflow, no strip: "script.sh " (trailing space) is a command, not a file
            if template_ext and value.endswith(template_ext):
                template = env.get_template(value)
            else:
                template = env.from_string(value)
            return template.render(**context)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"template file {exc.name!r} of {field or 'a field'} was not found"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error in {field or 'a field'} (line {exc.lineno}): {exc.message}"
            ) from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"cannot render {field or 'a field'}: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"cannot render {field or 'a field'}: {exc.message}") from None
    if isinstance(value, list):
        return [render_value(v, context, env, template_ext, field) for v in value]
    if isinstance(value, tuple):
        rendered = [render_value(v, context, env, template_ext, field) for v in value]
        return type(value)(*rendered) if hasattr(value, "_fields") else tuple(rendered)
    if isinstance(value, dict):
        return {k: render_value(v, context, env, template_ext, field) for k, v in value.items()}
    if isinstance(value, set):
        return {render_value(v, context, env, template_ext, field) for v in value}
    resolve = getattr(value, "resolve", None)
    if callable(resolve) and getattr(value, "__slipstream_xcomarg__", False):
        return resolve(context)
    return value
