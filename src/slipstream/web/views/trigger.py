"""Triggering a run from the page: a form built from the DAG's Params (one input per param,
by its JSON schema), a raw JSON conf, an optional logical date and run id.

The form values are read back into typed values here; checking them against the params'
schemas is the service's job (``trigger_dag``), so the page and the CLI refuse the same
values with the same sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.errors import InvalidInputError
from slipstream.roles import Permission
from slipstream.security.context import services
from slipstream.service import dags as dag_service
from slipstream.service import runs as run_service
from slipstream.web.views.blueprint import blueprint, needs
from slipstream.web.views.common import USER_ERRORS, acting_user, dag_header, flash_error

PREFIX = "param:"


@dataclass(frozen=True)
class ParamField:
    """How one param shows in the form."""

    name: str
    #: number, integer, checkbox, select, json or text
    widget: str
    #: the text the input shows (for a checkbox: "true" or "false")
    value: str
    default: Any
    has_default: bool
    description: str | None
    schema: dict[str, Any]
    #: for a select: (option value as JSON, label)
    options: tuple[tuple[str, str], ...] = ()

    @property
    def input_name(self) -> str:
        return PREFIX + self.name


def _main_type(schema: dict[str, Any], default: Any) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and default is not None:
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
            type(default), "json"
        )
    return kind if isinstance(kind, str) else None


def _widget(schema: dict[str, Any], default: Any) -> str:
    if "enum" in schema:
        return "select"
    kind = _main_type(schema, default)
    if kind == "boolean":
        return "checkbox"
    if kind in {"integer", "number"}:
        return kind
    if kind in {"array", "object", "json"}:
        return "json"
    return "text"


def _shown(widget: str, value: Any) -> str:
    """``value`` as the input's text."""
    if value is None:
        return ""
    if widget == "checkbox":
        return "true" if value is True else "false"
    if widget in {"select", "json"}:
        return json.dumps(value)
    return str(value)


def param_fields(dag: Any, typed: dict[str, str] | None = None) -> list[ParamField]:
    """The form's fields for the params of ``dag``; ``typed`` (input name → text) keeps
    what the user typed when the form comes back with an error."""
    fields = []
    for name, spec in dag.params.items():
        schema = dict(spec.get("schema") or {})
        default = spec.get("default") if spec.get("has_default") else None
        widget = _widget(schema, default)
        value = _shown(widget, default)
        if typed is not None:
            if widget == "checkbox":
                value = "true" if (PREFIX + name) in typed else "false"
            else:
                value = typed.get(PREFIX + name, value)
        options: tuple[tuple[str, str], ...] = ()
        if widget == "select":
            options = tuple((json.dumps(v), str(v)) for v in schema["enum"])
        fields.append(
            ParamField(
                name=name,
                widget=widget,
                value=value,
                default=default,
                has_default=bool(spec.get("has_default")),
                description=spec.get("description"),
                schema=schema,
                options=options,
            )
        )
    return fields


def _read(field: ParamField, form: dict[str, str]) -> tuple[bool, Any]:
    """(given, value) of one field; an empty field is not given (its default applies),
    except a text field the user emptied over a non-empty default."""
    raw = form.get(field.input_name)
    if field.widget == "checkbox":
        return True, raw is not None and raw.lower() in {"on", "true", "1"}
    if raw is None:
        return False, None
    text = raw.strip() if field.widget != "text" else raw
    if field.widget == "text":
        if text == "" and not (isinstance(field.default, str) and field.default):
            return False, None
        return True, text
    if text == "":
        return False, None
    where = f"param {field.name!r}"
    if field.widget == "integer":
        try:
            return True, int(text)
        except ValueError:
            raise InvalidInputError(f"{where} must be a whole number, not {text[:40]!r}") from None
    if field.widget == "number":
        try:
            number = float(text)
        except ValueError:
            raise InvalidInputError(f"{where} must be a number, not {text[:40]!r}") from None
        return True, int(number) if number.is_integer() and "." not in text else number
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        if field.widget == "select":  # an option that is not JSON: take the text
            return True, text
        raise InvalidInputError(f"{where} must be JSON (an array or an object)") from None


def build_conf(fields: list[ParamField], form: dict[str, str], conf_text: str) -> dict[str, Any]:
    """The run's conf: the JSON textarea, with the form's param values over its keys. A
    field left at the param's default does not override a key the JSON gives."""
    conf: dict[str, Any] = {}
    if conf_text.strip():
        try:
            parsed = json.loads(conf_text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"the conf is not valid JSON: {exc.msg} (line {exc.lineno})"
            ) from None
        if not isinstance(parsed, dict):
            raise InvalidInputError('the conf must be a JSON object, like {"key": "value"}')
        conf = parsed
    for field in fields:
        given, value = _read(field, form)
        if not given:
            continue
        at_default = field.has_default and value == field.default
        if at_default and field.name in conf:
            continue
        conf[field.name] = value
    return conf


@blueprint.route("/dags/<dag_id>/trigger", methods=["GET", "POST"])
@needs(Permission.OPERATE)
def trigger(dag_id: str) -> ResponseReturnValue:
    svc = services()
    row = dag_header(dag_id)
    dag = dag_service.get_dag(svc.session_factory, dag_id)
    if request.method == "GET":
        return _form(row, dag, None)
    form = {k: v for k, v in request.form.items()}
    fields = param_fields(dag)
    try:
        conf = build_conf(fields, form, form.get("conf", ""))
        date_text = form.get("logical_date", "").strip()
        logical_date = None
        if date_text:
            logical_date = run_service.dag_logical_date(
                svc.session_factory, dag_id, run_service.parse_date(date_text, "logical date")
            )
        run = run_service.trigger_dag(
            svc.session_factory,
            dag_id,
            now=svc.now(),
            conf=conf,
            logical_date=logical_date,
            run_id=form.get("run_id", "").strip() or None,
            actor=acting_user().username,
            database_url=svc.database_url,
            triggered_by="ui",
        )
    except USER_ERRORS as exc:
        flash_error(exc)
        return _form(row, dag, form), 400
    flash(f"Triggered run {run.run_id} of {dag_id}.", "success")
    if run.is_paused:
        flash(f"{dag_id} is paused: the run waits, queued, until the DAG is unpaused.", "info")
    return redirect(url_for("pages.grid", dag_id=dag_id))


def _form(row: Any, dag: Any, typed: dict[str, str] | None) -> str:
    return render_template(
        "trigger.html",
        dag=row,
        tab=None,
        fields=param_fields(dag, typed),
        conf=(typed or {}).get("conf", ""),
        logical_date=(typed or {}).get("logical_date", ""),
        run_id=(typed or {}).get("run_id", ""),
        timezone=dag.timezone,
    )
