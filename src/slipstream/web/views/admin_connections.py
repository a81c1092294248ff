"""Admin: connections — list (a password shows only as "set"), add, edit (the password stays
unless a new one is typed) and delete after a confirmation page.

The page never sends a stored password back to the browser: the form's password field is
always empty, and the list says only whether one is set.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.roles import Permission
from slipstream.sdk.connection import Connection
from slipstream.security.context import services
from slipstream.service import connections as conn_service
from slipstream.web.views.blueprint import blueprint, needs
from slipstream.web.views.common import (
    USER_ERRORS,
    acting_user,
    delete_page,
    flash_error,
    form_int,
    form_text,
)

#: the form's fields besides the password, in the order they show
FIELDS = ("conn_id", "conn_type", "description", "host", "schema", "login", "port", "extra")


def _row(conn: Connection) -> dict[str, Any]:
    shown = conn_service.describe_connection(conn)
    shown["password_set"] = bool(conn.password)
    return shown


@blueprint.route("/admin/connections")
@needs(Permission.MANAGE_CONFIG)
def connections() -> ResponseReturnValue:
    svc = services()
    rows = [_row(c) for c in conn_service.list_connections(svc.session_factory, svc.fernet)]
    return render_template("admin/connections.html", connections=rows)


def _typed() -> dict[str, str]:
    """What the user typed (never the password), to show the form again after an error."""
    return {name: request.form.get(name, "") for name in FIELDS}


def _from_form(conn_id: str, password: str | None) -> Connection:
    return conn_service.build_connection(
        conn_id,
        conn_type=form_text("conn_type", required="the connection type", max_length=500),
        description=form_text("description"),
        host=form_text("host", max_length=500),
        schema=form_text("schema", max_length=500),
        login=form_text("login"),
        password=password,
        port=form_int("port", "the port"),
        extra=form_text("extra", max_length=100_000),
    )


def _form(values: dict[str, Any], *, editing: bool, password_set: bool = False) -> str:
    return render_template(
        "admin/connection_form.html", values=values, editing=editing, password_set=password_set
    )


@blueprint.route("/admin/connections/new", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def connection_new() -> ResponseReturnValue:
    if request.method == "GET":
        return _form({}, editing=False)
    svc = services()
    try:
        conn_id = form_text("conn_id", required="the connection id", max_length=250) or ""
        conn = _from_form(conn_id, request.form.get("password") or None)
        conn_service.add_connection(svc.session_factory, svc.fernet, conn, actor=_actor())
    except USER_ERRORS as exc:
        flash_error(exc)
        return _form(_typed(), editing=False), 400
    flash(f"Connection {conn.conn_id} added.", "success")
    return redirect(url_for("pages.connections"))


def _actor() -> str:
    return acting_user().username


@blueprint.route("/admin/connections/<conn_id>/edit", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def connection_edit(conn_id: str) -> ResponseReturnValue:
    svc = services()
    current = conn_service.get_connection(svc.session_factory, svc.fernet, conn_id)  # or 404
    if request.method == "GET":
        values = {name: getattr(current, name, None) for name in FIELDS}
        # secrets inside the extra stay masked; saving the mask back keeps their values
        values["extra"] = conn_service.redacted_extra(current)
        return _form(values, editing=True, password_set=bool(current.password))
    try:
        typed = request.form.get("password") or None
        conn = _from_form(conn_id, typed)
        conn_service.update_connection(
            svc.session_factory,
            svc.fernet,
            conn,
            actor=_actor(),
            keep_password=typed is None and not _flag_clear_password(),
        )
    except USER_ERRORS as exc:
        flash_error(exc)
        values = {**_typed(), "conn_id": conn_id}
        return _form(values, editing=True, password_set=bool(current.password)), 400
    flash(f"Connection {conn_id} saved.", "success")
    return redirect(url_for("pages.connections"))


def _flag_clear_password() -> bool:
    return request.form.get("clear_password", "") == "true"


@blueprint.route("/admin/connections/<conn_id>/delete", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def connection_delete(conn_id: str) -> ResponseReturnValue:
    svc = services()
    conn_service.get_connection(svc.session_factory, svc.fernet, conn_id)  # or 404
    return delete_page(
        "connection",
        conn_id,
        delete=lambda: conn_service.delete_connection(svc.session_factory, conn_id, actor=_actor()),
        back=url_for("pages.connections"),
    )
