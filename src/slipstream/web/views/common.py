"""What every page module shares: reading form and query values into typed values with a
one-sentence error, acting on a POST (flash the outcome, redirect), the Jinja filters that
show times, durations and states the same way on every page, and the DAG header.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from slipstream.errors import (
    AlreadyExistsError,
    InvalidInputError,
    InvalidStateTransition,
    SlipstreamError,
)
from slipstream.security.auth import CurrentUser, user
from slipstream.security.context import services
from slipstream.service import dags as dag_service
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store.models import Dag

#: errors a user's action can meet that the page reports as a flash, not an error page
#: (not-found and permission errors keep their own 404/403 pages)
USER_ERRORS: tuple[type[SlipstreamError], ...] = (
    InvalidInputError,
    AlreadyExistsError,
    InvalidStateTransition,
)

#: run states that still change by themselves: pages keep polling while they show one
ACTIVE_RUN_STATES = frozenset({DagRunState.QUEUED.value, DagRunState.RUNNING.value})

#: what a page shows for a time or duration that has no value (yet)
NO_VALUE = "\u2013"

#: the states the legend shows, in the order a task goes through them
LEGEND_STATES = [s.value for s in TaskInstanceState]


def acting_user() -> CurrentUser:
    """The logged-in user; every route is behind ``needs(...)``, so there is one."""
    who = user()
    assert who is not None, "needs() lets no anonymous request through"
    return who


def safe_back(default: str) -> str:
    """Where to go after a POST: the ``next`` form value if it is a path on this site,
    else ``default``."""
    target = request.form.get("next") or ""
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return default


def act(action: Callable[[], str], back: str) -> ResponseReturnValue:
    """Run ``action`` (which returns the success message), flash its outcome — or the
    sentence saying why bad input was refused — and redirect to ``back``."""
    try:
        message = action()
    except USER_ERRORS as exc:
        flash_error(exc)
    else:
        flash(message, "success")
    return redirect(back)


def delete_page(
    what: str,
    name: str,
    *,
    delete: Callable[[], object],
    back: str,
    refused: str | None = None,
) -> ResponseReturnValue:
    """A delete route's two halves: GET shows the confirmation page for ``what`` ``name``
    (or why it cannot be deleted); POST deletes it unless ``refused``, flashes the outcome
    and goes ``back``."""
    if request.method == "GET":
        return render_template(
            "admin/confirm_delete.html",
            what=what,
            name=name,
            action=request.path,
            cancel=back,
            refused=refused,
        )

    def _do() -> str:
        if refused:
            raise InvalidInputError(refused)
        delete()
        return f"{what.capitalize()} {name} deleted."

    return act(_do, back)


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else "The request was refused."


def flash_error(exc: SlipstreamError) -> None:
    flash(_sentence(str(exc)), "error")


def form_text(name: str, *, required: str | None = None, max_length: int = 10_000) -> str | None:
    """The stripped text of form field ``name`` (None when empty). ``required`` is the
    field's label: when given, an empty field is refused."""
    value = request.form.get(name, "").strip()
    if len(value) > max_length:
        raise InvalidInputError(f"{name} is longer than {max_length} characters")
    if not value:
        if required:
            raise InvalidInputError(f"{required} cannot be empty")
        return None
    return value


def form_int(name: str, label: str, *, minimum: int | None = None) -> int | None:
    text = form_text(name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(f"{label} must be a whole number, not {text[:40]!r}") from None
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"{label} must be at least {minimum}, not {value}")
    return value


def form_flag(name: str) -> bool:
    return request.form.get(name, "").lower() in {"1", "true", "on", "yes"}


def page_number() -> int:
    """The ``page`` query value (1 when missing or not a positive number)."""
    return max(1, request.args.get("page", 1, type=int) or 1)


def dag_header(dag_id: str) -> Dag:
    """The ``dag`` row every DAG page shows in its header (404 when the DAG is unknown)."""
    return dag_service.get_dag_row(services().session_factory, dag_id)


# --- Jinja filters -------------------------------------------------------------------


def _when(value: datetime | None) -> Markup:
    """A time in UTC, short (to the second), with the full ISO value as the title."""
    if value is None:
        return Markup('<span class="muted">{}</span>').format(NO_VALUE)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    full = value.isoformat()
    short = value.strftime("%Y-%m-%d %H:%M:%S")
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(full, short)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NO_VALUE
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _between(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return NO_VALUE
    return _duration(((end or services().now()) - start).total_seconds())


def _state(value: str | None) -> Markup:
    state = value or "none"
    return Markup('<span class="state state-{0}" data-state="{0}">{1}</span>').format(
        state, state.replace("_", " ")
    )


def _pretty(value: Any) -> str:
    """A value as indented JSON text for people (escaped by the template like any text)."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def init_filters(app: Flask) -> None:
    app.jinja_env.filters["pretty"] = _pretty
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["duration"] = _duration
    app.jinja_env.filters["state"] = _state
    app.jinja_env.globals["between"] = _between
    app.jinja_env.globals["legend_states"] = LEGEND_STATES
    app.jinja_env.globals["url_with"] = url_with


def url_with(**changes: Any) -> str:
    """The current page's URL with some query values changed (None drops one): for
    pagination and filter links that keep the other filters."""
    args: dict[str, Any] = {k: request.args.getlist(k) for k in request.args}
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    endpoint = request.endpoint or "pages.dag_list"
    return url_for(endpoint, **(request.view_args or {}), **args)
