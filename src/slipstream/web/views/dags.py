"""The DAG list: search, tags, pause toggles, recent runs, next run, import errors."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from slipstream.roles import Permission
from slipstream.security.context import services
from slipstream.service import dags as dag_service
from slipstream.web.views.blueprint import blueprint, needs

PAGE_SIZE = 50


@blueprint.route("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("pages.dag_list"))


@blueprint.route("/dags")
@needs(Permission.READ)
def dag_list() -> ResponseReturnValue:
    svc = services()
    search = request.args.get("search", "").strip() or None
    tags = [t for t in request.args.getlist("tags") if t]
    page_number = max(1, request.args.get("page", 1, type=int) or 1)
    page = dag_service.find_dags(
        svc.session_factory,
        search=search,
        tags=tags,
        limit=PAGE_SIZE,
        offset=(page_number - 1) * PAGE_SIZE,
    )
    return render_template(
        "dag_list.html",
        page=page,
        search=search or "",
        tags=tags,
        all_tags=dag_service.all_tags(svc.session_factory),
        import_errors=dag_service.list_import_errors(svc.session_factory),
        page_number=page_number,
        page_size=PAGE_SIZE,
    )
