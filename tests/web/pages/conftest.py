"""Fixtures for the pages: two small DAG files parsed for real, runs created by the real
trigger service, task states moved with the store's own state functions (a worker is not
the point of a page test), and a helper that posts forms with the session's CSRF token."""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from slipstream.roles import Role
from slipstream.service import runs as run_service
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import transaction
from slipstream.store.models import AuditLog
from slipstream.store.task_instances import TIKey
from slipstream.task_logs import try_log_path

from ..conftest import WebEnv, csrf_token

#: params of every kind the trigger form knows; a TaskGroup; templated commands
DEMO_DAG = textwrap.dedent(
    """\
    from datetime import datetime

    from slipstream import DAG, Param, TaskGroup
    from slipstream.operators import BashOperator, EmptyOperator

    with DAG(
        dag_id="demo",
        description="the pages' test DAG",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        tags=["team-a", "etl"],
        default_args={"owner": "data-team"},
        params={
            "count": Param(2, type="integer", minimum=1, description="how many rows"),
            "mode": Param("fast", enum=["fast", "slow"]),
            "dry": Param(False, type="boolean"),
            "name": Param("world", type="string"),
        },
    ) as dag:
        start = EmptyOperator(task_id="start")
        with TaskGroup("stage"):
            extract = BashOperator(task_id="extract", bash_command="echo {{ params.name }}")
            load = BashOperator(task_id="load", bash_command="echo load")
            extract >> load
        end = EmptyOperator(task_id="end")
        start >> extract
        load >> end
    """
)

#: scheduled, with another tag
DAILY_DAG = textwrap.dedent(
    """\
    from datetime import datetime

    from slipstream import DAG
    from slipstream.operators import BashOperator

    with DAG(
        dag_id="daily",
        schedule="@daily",
        start_date=datetime(2024, 1, 1),
        catchup=False,
        tags=["team-b"],
    ) as dag:
        BashOperator(task_id="only", bash_command="echo daily")
    """
)

DEMO_TASKS = ["start", "stage.extract", "stage.load", "end"]


@dataclass
class Pages:
    """The app with the two DAGs parsed, and helpers to act on it."""

    web: WebEnv

    def client(self, role: Role) -> FlaskClient:
        return self.web.client(role)

    def trigger(self, dag_id: str = "demo", run_id: str = "run_1", **kwargs: Any) -> str:
        run_service.trigger_dag(
            self.web.factory, dag_id, now=datetime.now(UTC), run_id=run_id, actor="test", **kwargs
        )
        return run_id

    def set_run_state(self, run_id: str, state: DagRunState, dag_id: str = "demo") -> None:
        with transaction(self.web.factory) as session:
            run_store.set_dag_run_state(session, dag_id, run_id, state, datetime.now(UTC))

    def set_task(
        self, run_id: str, task_id: str, state: TaskInstanceState, dag_id: str = "demo"
    ) -> None:
        """Move a task instance from none to ``state`` as the scheduler and a worker would:
        a try starts (running) and, for a finished state, ends in it."""
        key = TIKey(dag_id, run_id, task_id)
        now = datetime.now(UTC)
        none = {TaskInstanceState.NONE}
        with transaction(self.web.factory) as session:
            if state in (TaskInstanceState.SCHEDULED, TaskInstanceState.QUEUED):
                assert ti_store.set_state(session, key, expected=none, new=state, now=now)
                return
            try_number = ti_store.start_try(
                session, key, expected=none, now=now - timedelta(seconds=5), hostname="host-1"
            )
            assert try_number is not None
            if state != TaskInstanceState.RUNNING:
                assert ti_store.finish_try(
                    session, key, try_number=try_number, state=state, now=now
                )

    def write_log(self, run_id: str, task_id: str, text: str, try_number: int = 1) -> None:
        path = try_log_path(self.web.config.log_folder, "demo", run_id, task_id, try_number)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def audit(self, event: str) -> list[AuditLog]:
        with transaction(self.web.factory, readonly=True) as session:
            query = select(AuditLog).where(AuditLog.event == event).order_by(AuditLog.id)
            return list(session.scalars(query))


def _pages(web: WebEnv) -> Iterator[Pages]:
    web.write_dag("demo.py", DEMO_DAG)
    web.write_dag("daily.py", DAILY_DAG)
    web.parse()
    try:
        yield Pages(web)
    finally:
        # close the pool's connections now, not when the garbage collector finds them
        web.factory.kw["bind"].dispose()


@pytest.fixture
def pages(web: WebEnv) -> Iterator[Pages]:
    """The two DAGs parsed, on SQLite."""
    yield from _pages(web)


@pytest.fixture
def pages_any_db(web_any_db: WebEnv) -> Iterator[Pages]:
    """The two DAGs parsed, once on SQLite and once on PostgreSQL."""
    yield from _pages(web_any_db)


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None) -> TestResponse:
    """POST a form as the page would: with the session's CSRF token."""
    token = csrf_token(client.get("/dags").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **(data or {})})


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def flashes(client: FlaskClient, path: str) -> list[str]:
    """The flash messages the next page shows."""
    page = text(client.get(path))
    return [
        html.unescape(re.sub(r"\s+", " ", m).strip())
        for m in re.findall(r'class="flash flash-\w+" role="alert">(.*?)</div>', page, re.S)
    ]
