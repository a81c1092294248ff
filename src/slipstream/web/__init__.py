"""The web server's application: ``create_app`` builds the Flask app that serves the pages
(blueprint ``pages``) and the REST API (blueprint ``api``, under /api/v1).

Both call the same service functions as the CLI. The app never imports user DAG code: it
reads serialized DAGs, runs and logs from the database and the log folder.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask, Response, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from slipstream import api
from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.errors import AuthenticationError, SlipstreamError
from slipstream.security.auth import authenticated_by_header, init_auth, user
from slipstream.security.context import EXTENSION_KEY, WebServices
from slipstream.security.errors import http_status
from slipstream.store.crypto import read_or_create_secret_file
from slipstream.store.db import make_engine, session_factory
from slipstream.web import views

log = logging.getLogger(__name__)

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Scripts and styles come from our own static files only: no inline script can run, so
# a value that slipped through escaping still cannot execute.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def create_app(
    config: Config,
    *,
    factory: sessionmaker[Session] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Flask:
    """The app for ``config``; ``factory`` (default: a new engine on config's database) and
    ``clock`` may be given by tests."""
    app = Flask(__name__)
    web = config.webserver
    app.secret_key = web.secret_key or read_or_create_secret_file(
        config.webserver_secret_key_file, lambda: secrets.token_hex(32).encode()
    )
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=web.cookie_secure,
        SESSION_COOKIE_NAME="slipstream_session",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=web.session_lifetime_minutes),
        MAX_CONTENT_LENGTH=web.max_request_bytes,
        # checked in _protect below, so that API calls with an Authorization header (and
        # no cookie) are exempt while every cookie-carrying request is checked
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the declared field order
    services = WebServices(
        config=config,
        session_factory=factory or session_factory(make_engine(config)),
        clock=clock,
    )
    app.extensions[EXTENSION_KEY] = services
    csrf = CSRFProtect(app)
    init_auth(app)

    @app.before_request
    def _protect() -> None:
        if request.method in _UNSAFE and not authenticated_by_header():
            if _is_api() and user() is None:
                # No credentials at all: nothing for a forged request to ride on, and the
                # endpoint answers 401 (log in), which says more than a CSRF failure.
                return
            csrf.protect()

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", _CSP)
        if _is_api():
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    _register_errors(app)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(views.blueprint)
    views.init_app(app)
    return app


def _is_api() -> bool:
    """The request is for the REST API (JSON answers, errors included), not a page."""
    return request.path.startswith(api.API_PREFIX)


def _json_error(status: int, title: str, detail: str) -> tuple[Response, int]:
    response = jsonify({"title": title, "status": status, "detail": detail})
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="slipstream"'
    return response, status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(SlipstreamError)
    def _ours(exc: SlipstreamError) -> ResponseReturnValue:
        status = http_status(exc)
        if _is_api():
            return _json_error(status, type(exc).__name__, str(exc))
        if isinstance(exc, AuthenticationError):
            return redirect(url_for("pages.login", next=request.full_path))
        if request.method == "POST" and status == 400 and request.referrer:
            flash(str(exc), "error")
            return redirect(request.referrer)
        return Response(
            render_template("error.html", status=status, message=str(exc)), status=status
        ), status

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[Response, int]:
        detail = f"CSRF check failed: {exc.description} Reload the page and try again."
        if _is_api():
            return _json_error(400, "CSRFError", detail)
        return Response(render_template("error.html", status=400, message=detail)), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        detail = exc.description or exc.name
        if status == 413:
            detail = (
                f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes "
                "(webserver.max_request_bytes)"
            )
        if _is_api():
            return _json_error(status, exc.name, detail)
        return Response(render_template("error.html", status=status, message=detail)), status

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        detail = "internal error: the server's log has the details"
        if _is_api():
            return _json_error(500, "Internal Server Error", detail)
        return Response(render_template("error.html", status=500, message=detail)), 500
