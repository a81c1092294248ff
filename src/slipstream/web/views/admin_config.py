"""Admin: variables (values under sensitive keys masked and never sent back to the
browser) and pools (slots used, queued and open; ``default_pool`` cannot be deleted)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.errors import AlreadyExistsError, InvalidInputError
from slipstream.masking import MASK, is_sensitive_key
from slipstream.roles import Permission
from slipstream.security.context import services
from slipstream.service import pools as pool_service
from slipstream.service import variables as var_service
from slipstream.store.pools import DEFAULT_POOL
from slipstream.web.views.blueprint import blueprint, needs
from slipstream.web.views.common import (
    USER_ERRORS,
    acting_user,
    delete_page,
    flash_error,
    form_int,
    form_text,
)

# --- variables ---------------------------------------------------------------------------


@blueprint.route("/admin/variables")
@needs(Permission.MANAGE_CONFIG)
def variables() -> ResponseReturnValue:
    svc = services()
    rows = [
        {
            "key": v.key,
            "value": MASK if is_sensitive_key(v.key) else v.value,
            "masked": is_sensitive_key(v.key),
            "description": v.description,
        }
        for v in var_service.list_variables(svc.session_factory, svc.fernet)
    ]
    return render_template("admin/variables.html", variables=rows)


def _variable_form(values: dict[str, Any], *, editing: bool, masked: bool = False) -> str:
    return render_template(
        "admin/variable_form.html", values=values, editing=editing, masked=masked
    )


def _save_variable(key: str, *, keep_value: bool) -> str:
    svc = services()
    value = request.form.get("value", "")
    if keep_value and value == "":
        # a masked value was not shown, so an empty field means "unchanged"
        value = var_service.get_variable(svc.session_factory, svc.fernet, key).value
    var_service.set_variable(
        svc.session_factory,
        svc.fernet,
        key,
        value,
        description=form_text("description") or "",
        actor=acting_user().username,
    )
    return key


@blueprint.route("/admin/variables/new", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def variable_new() -> ResponseReturnValue:
    if request.method == "GET":
        return _variable_form({}, editing=False)
    svc = services()
    try:
        key = form_text("key", required="the key", max_length=250) or ""
        try:
            var_service.create_variable(
                svc.session_factory,
                svc.fernet,
                key,
                request.form.get("value", ""),
                description=form_text("description") or "",
                actor=acting_user().username,
            )
        except AlreadyExistsError:
            raise InvalidInputError(f"variable {key!r} exists already: edit it instead") from None
    except USER_ERRORS as exc:
        flash_error(exc)
        typed_key = request.form.get("key", "")
        values = {"key": typed_key, "description": request.form.get("description")}
        if not is_sensitive_key(typed_key):
            values["value"] = request.form.get("value", "")
        return _variable_form(values, editing=False), 400
    flash(f"Variable {key} added.", "success")
    return redirect(url_for("pages.variables"))


@blueprint.route("/admin/variables/<key>/edit", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def variable_edit(key: str) -> ResponseReturnValue:
    svc = services()
    record = var_service.get_variable(svc.session_factory, svc.fernet, key)  # or 404
    masked = is_sensitive_key(key)
    if request.method == "GET":
        values = {"key": key, "description": record.description}
        if not masked:
            values["value"] = record.value
        return _variable_form(values, editing=True, masked=masked)
    try:
        _save_variable(key, keep_value=masked)
    except USER_ERRORS as exc:
        flash_error(exc)
        values = {"key": key, "description": request.form.get("description")}
        if not masked:
            values["value"] = request.form.get("value", "")
        return _variable_form(values, editing=True, masked=masked), 400
    flash(f"Variable {key} saved.", "success")
    return redirect(url_for("pages.variables"))


@blueprint.route("/admin/variables/<key>/delete", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def variable_delete(key: str) -> ResponseReturnValue:
    svc = services()
    var_service.get_variable(svc.session_factory, svc.fernet, key)  # or 404
    return delete_page(
        "variable",
        key,
        delete=lambda: var_service.delete_variable(
            svc.session_factory, key, actor=acting_user().username
        ),
        back=url_for("pages.variables"),
    )


# --- pools -------------------------------------------------------------------------------


@blueprint.route("/admin/pools")
@needs(Permission.READ)
def pools() -> ResponseReturnValue:
    rows = pool_service.list_pools(services().session_factory)
    return render_template("admin/pools.html", pools=rows, default_pool=DEFAULT_POOL)


def _pool_form(values: dict[str, Any], *, editing: bool) -> str:
    return render_template(
        "admin/pool_form.html", values=values, editing=editing, default_pool=DEFAULT_POOL
    )


def _save_pool(name: str) -> None:
    slots = form_int("slots", "slots", minimum=0)
    if slots is None:
        raise InvalidInputError("slots cannot be empty: give a whole number")
    pool_service.set_pool(
        services().session_factory,
        name,
        slots,
        form_text("description") or "",
        actor=acting_user().username,
    )


def _typed_pool(name: str) -> dict[str, Any]:
    return {
        "pool": name,
        "slots": request.form.get("slots", ""),
        "description": request.form.get("description", ""),
    }


@blueprint.route("/admin/pools/new", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def pool_new() -> ResponseReturnValue:
    if request.method == "GET":
        return _pool_form({"slots": 1}, editing=False)
    name = request.form.get("pool", "").strip()
    try:
        name = form_text("pool", required="the pool name", max_length=256) or ""
        if name in {p.pool for p in pool_service.list_pools(services().session_factory)}:
            raise InvalidInputError(f"pool {name!r} exists already: edit it instead")
        _save_pool(name)
    except USER_ERRORS as exc:
        flash_error(exc)
        return _pool_form(_typed_pool(name), editing=False), 400
    flash(f"Pool {name} added.", "success")
    return redirect(url_for("pages.pools"))


@blueprint.route("/admin/pools/<name>/edit", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def pool_edit(name: str) -> ResponseReturnValue:
    pool = pool_service.get_pool(services().session_factory, name)  # or 404
    if request.method == "GET":
        values = {"pool": pool.pool, "slots": pool.slots, "description": pool.description}
        return _pool_form(values, editing=True)
    try:
        _save_pool(name)
    except USER_ERRORS as exc:
        flash_error(exc)
        return _pool_form(_typed_pool(name), editing=True), 400
    flash(f"Pool {name} saved.", "success")
    return redirect(url_for("pages.pools"))


@blueprint.route("/admin/pools/<name>/delete", methods=["GET", "POST"])
@needs(Permission.MANAGE_CONFIG)
def pool_delete(name: str) -> ResponseReturnValue:
    factory = services().session_factory
    pool_service.get_pool(factory, name)  # or 404
    return delete_page(
        "pool",
        name,
        delete=lambda: pool_service.delete_pool(factory, name, actor=acting_user().username),
        back=url_for("pages.pools"),
        refused=(
            f"{DEFAULT_POOL} cannot be deleted (set its slots instead)."
            if name == DEFAULT_POOL
            else None
        ),
    )
