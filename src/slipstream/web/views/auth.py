"""Logging in and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_user, logout_user

from slipstream.errors import AuthenticationError
from slipstream.security.auth import CurrentUser, user
from slipstream.security.context import services
from slipstream.service import users as user_service
from slipstream.web.views.blueprint import blueprint


def _safe_next(target: str | None) -> str:
    # Only a path on this site: an absolute URL here would make the login an open redirect.
    if not target:
        return url_for("pages.dag_list")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.dag_list")
    return target


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if user() is not None and request.method == "GET":
        return redirect(_safe_next(request.args.get("next")))
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        svc = services()
        try:
            info = user_service.authenticate(
                svc.session_factory,
                username,
                password,
                now=svc.now(),
                source=f"web login from {request.remote_addr}",
                audit_success=True,
            )
        except AuthenticationError as exc:
            error = str(exc)
        else:
            session.clear()  # a fresh session: no fixation of one set before login
            session.permanent = True
            login_user(CurrentUser(info))
            return redirect(_safe_next(request.form.get("next")))
    status = 401 if error else 200
    return render_template("login.html", error=error, next=request.values.get("next", "")), status


@blueprint.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    logout_user()
    session.clear()
    return redirect(url_for("pages.login"))
