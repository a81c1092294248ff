"""Admin: users (Admin only: create with a role, change the role, reset the password,
delete — never oneself), the DAG files that failed to import, and the audit log."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.errors import InvalidInputError
from slipstream.roles import Permission, Role, parse_role
from slipstream.security.context import services
from slipstream.service import audit_log
from slipstream.service import dags as dag_service
from slipstream.service import users as user_service
from slipstream.web.views.blueprint import blueprint, needs
from slipstream.web.views.common import (
    USER_ERRORS,
    acting_user,
    delete_page,
    flash_error,
    form_text,
    page_number,
)

AUDIT_PAGE_SIZE = 50

# --- users -------------------------------------------------------------------------------


@blueprint.route("/admin/users")
@needs(Permission.MANAGE_USERS)
def users() -> ResponseReturnValue:
    rows = user_service.list_users(services().session_factory)
    return render_template("admin/users.html", users=rows)


def _user_form(values: dict[str, Any], *, editing: bool) -> str:
    return render_template(
        "admin/user_form.html", values=values, editing=editing, roles=[r.value for r in Role]
    )


@blueprint.route("/admin/users/new", methods=["GET", "POST"])
@needs(Permission.MANAGE_USERS)
def user_new() -> ResponseReturnValue:
    if request.method == "GET":
        return _user_form({"role": Role.VIEWER.value}, editing=False)
    svc = services()
    try:
        username = form_text("username", required="the username", max_length=256) or ""
        user_service.create_user(
            svc.session_factory,
            username=username,
            role=parse_role(request.form.get("role", "")),
            password=request.form.get("password", ""),
            now=svc.now(),
            email=form_text("email", max_length=320),
            full_name=form_text("full_name", max_length=500),
            actor=acting_user().username,
        )
    except USER_ERRORS as exc:
        flash_error(exc)
        values = {k: request.form.get(k, "") for k in ("username", "role", "email", "full_name")}
        return _user_form(values, editing=False), 400
    flash(f"User {username} created.", "success")
    return redirect(url_for("pages.users"))


@blueprint.route("/admin/users/<username>/edit", methods=["GET", "POST"])
@needs(Permission.MANAGE_USERS)
def user_edit(username: str) -> ResponseReturnValue:
    svc = services()
    info = user_service.get_user(svc.session_factory, username)  # or 404
    if request.method == "GET":
        values = {"username": info.username, "role": info.role.value, "email": info.email}
        return _user_form(values, editing=True)
    try:
        role = parse_role(request.form.get("role", ""))
        password = request.form.get("password", "")
        if role == info.role and not password:
            raise InvalidInputError("nothing to change: pick another role or type a new password")
        if info.username == acting_user().username and role != info.role:
            raise InvalidInputError("you cannot change your own role (another admin can)")
        if password:
            user_service.hash_password(password)  # refuse a short one before changing anything
        changed = []
        if role != info.role:
            user_service.set_role(svc.session_factory, username, role, actor=acting_user().username)
            changed.append(f"role {role.value}")
        if password:
            user_service.reset_password(
                svc.session_factory, username, password, now=svc.now(), actor=acting_user().username
            )
            changed.append("new password")
    except USER_ERRORS as exc:
        flash_error(exc)
        values = {"username": username, "role": request.form.get("role", info.role.value)}
        return _user_form(values, editing=True), 400
    flash(f"User {username} saved: {' and '.join(changed)}.", "success")
    return redirect(url_for("pages.users"))


@blueprint.route("/admin/users/<username>/delete", methods=["GET", "POST"])
@needs(Permission.MANAGE_USERS)
def user_delete(username: str) -> ResponseReturnValue:
    factory = services().session_factory
    user_service.get_user(factory, username)  # or 404
    me = acting_user().username
    return delete_page(
        "user",
        username,
        delete=lambda: user_service.delete_user(factory, username, actor=me),
        back=url_for("pages.users"),
        refused="You cannot delete your own user." if username == me else None,
    )


# --- import errors and the audit log -------------------------------------------------------


@blueprint.route("/admin/import-errors")
@needs(Permission.READ)
def import_errors() -> ResponseReturnValue:
    rows = dag_service.list_import_errors(services().session_factory)
    return render_template("admin/import_errors.html", errors=rows)


@blueprint.route("/admin/audit-log", endpoint="audit_log")
@needs(Permission.READ)
def audit_log_page() -> ResponseReturnValue:
    filters = {
        name: (request.args.get(name, "").strip() or None) for name in ("dag_id", "event", "owner")
    }
    number = page_number()
    page = audit_log.list_entries(
        services().session_factory,
        **filters,
        limit=AUDIT_PAGE_SIZE,
        offset=(number - 1) * AUDIT_PAGE_SIZE,
    )
    return render_template(
        "admin/audit_log.html",
        page=page,
        filters={k: v or "" for k, v in filters.items()},
        page_number=number,
        page_size=AUDIT_PAGE_SIZE,
    )
