"""Rendered template fields stored with a try's end (by a real worker process and by
``dags test``), masked; and the source of DAG files stored by the DAG processor. On SQLite
and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.dag_processor import DagProcessor
from slipstream.errors import NotFoundError
from slipstream.service import overview, testing
from slipstream.service.connections import add_connection, build_connection
from slipstream.service.runs import trigger_dag
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.crypto import load_fernet
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.schema import migrate
from slipstream.store.task_instances import TIKey
from slipstream.worker.rendered import MAX_FIELD_BYTES

S = TaskInstanceState
T0 = datetime(2024, 5, 1, tzinfo=UTC)
PASSWORD = "s3cr3t-pw-4242"

# The password reaches the command through a template; "op_args" renders past the size cap
# and "marker" is no JSON value.
DAG_FILE = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import BashOperator, PythonOperator

class Marker:
    def __repr__(self):
        return "Marker()"

def noop(*args, **kwargs):
    return None

with DAG("secret", schedule=None, start_date=datetime(2024, 1, 1)):
    BashOperator(
        task_id="query",
        bash_command=(
            "echo postgres://{{ conn.warehouse.login }}:{{ conn.warehouse.password }}"
            "@{{ conn.warehouse.host }}/{{ ds }}"
        ),
        env={"PGPASSWORD": "{{ conn.warehouse.password }}", "DAY": "{{ ds }}"},
        append_env=True,
    )
    PythonOperator(
        task_id="big",
        python_callable=noop,
        op_args=["{{ 'x' * 70000 }}"],
        op_kwargs={"marker": Marker(), "day": "{{ ds }}"},
    )
"""


@dataclass
class Env:
    config: Config
    engine: Engine
    factory: sessionmaker[Session]
    environ: dict[str, str]

    def parse(self) -> None:
        results = DagProcessor(self.config, self.factory).process_folder()
        assert [r.error for r in results if r.error] == []

    def rendered(self, run_id: str, task_id: str) -> tuple[str, dict[str, object] | None]:
        with transaction(self.factory) as session:
            ti = ti_store.get(session, TIKey("secret", run_id, task_id))
            assert ti is not None
            return ti.state, ti.rendered_fields


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    dags = tmp_path / "dags"
    dags.mkdir()
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM")},
        "SLIPSTREAM_HOME": str(tmp_path / "home"),
        "SLIPSTREAM__DATABASE__URL": db_url,
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
    }
    config = load_config(environ)
    engine = make_engine(config)
    migrate(engine)
    factory = session_factory(engine)
    connection = build_connection(
        "warehouse", conn_type="postgres", host="db.internal", login="etl", password=PASSWORD
    )
    add_connection(factory, load_fernet(config), connection, actor="test")
    yield Env(config, engine, factory, environ)
    engine.dispose()


def test_a_worker_stores_the_rendered_fields_masked(env: Env) -> None:
    (env.config.dags_folder / "secret.py").write_text(textwrap.dedent(DAG_FILE))
    env.parse()
    run_id = trigger_dag(env.factory, "secret", now=T0, logical_date=T0).run_id
    with transaction(env.factory) as session:
        # what the scheduler does before a worker may claim the task: run started, try queued
        run_store.set_dag_run_state(session, "secret", run_id, DagRunState.RUNNING, T0)
        for task_id in ("query", "big"):
            key = TIKey("secret", run_id, task_id)
            queued = ti_store.set_state(
                session, key, expected={S.NONE}, new=S.QUEUED, now=T0, try_number=1, queued_at=T0
            )
            assert queued
    worker = subprocess.run(
        [sys.executable, "-m", "slipstream", "worker", "--burst"],
        env=env.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr

    state, fields = env.rendered(run_id, "query")
    assert state == "success"
    assert fields == {
        "bash_command": "echo postgres://etl:***@db.internal/2024-05-01",
        "env": {"PGPASSWORD": "***", "DAY": "2024-05-01"},
        "cwd": None,
    }
    state, fields = env.rendered(run_id, "big")
    assert state == "success"
    assert_big_task_fields(fields)
    # the secret reached no log either
    logs = "".join(p.read_text() for p in env.config.log_folder.rglob("*.log"))
    assert "postgres://etl:***@db.internal" in logs and PASSWORD not in logs


def assert_big_task_fields(fields: dict[str, object] | None) -> None:
    assert fields is not None
    assert fields["op_kwargs"] == {"marker": "Marker()", "day": "2024-05-01"}  # a repr
    capped = fields["op_args"]
    # 70,000 x's in a JSON list are 70,004 bytes: over the cap, kept as the start of the text
    assert isinstance(capped, str) and capped.startswith('["xxx')
    head, note = capped.split("\n... ")
    assert len(head.encode()) == MAX_FIELD_BYTES
    assert (
        note
        == f"(truncated: the rendered value is 70004 bytes; the first {MAX_FIELD_BYTES} are kept)"
    )


def test_dags_test_stores_the_rendered_fields_masked(env: Env) -> None:
    (env.config.dags_folder / "secret.py").write_text(textwrap.dedent(DAG_FILE))
    dag = testing.load_dag(env.config, env.engine, "secret")
    result = testing.test_dag(
        config=env.config,
        engine=env.engine,
        fernet=load_fernet(env.config),
        dag=dag,
        logical_date=T0,
        conf={},
    )
    assert result.state == DagRunState.SUCCESS
    fields = env.rendered(result.run_id, "query")[1]
    assert fields is not None and fields["env"] == {"PGPASSWORD": "***", "DAY": "2024-05-01"}
    assert fields["bash_command"] == "echo postgres://etl:***@db.internal/2024-05-01"
    assert_big_task_fields(env.rendered(result.run_id, "big")[1])


def test_the_processor_stores_each_files_source(env: Env) -> None:
    folder = env.config.dags_folder
    source = textwrap.dedent(DAG_FILE)
    (folder / "secret.py").write_text(source)
    clock = iter(T0 + timedelta(minutes=m) for m in range(10))
    processor = DagProcessor(env.config, env.factory, clock=lambda: next(clock))
    processor.process_folder()
    stored = overview.dag_source(env.factory, "secret")
    assert stored.source == source and stored.updated_at == T0
    assert stored.fileloc == str((folder / "secret.py").resolve())

    # parsed again unchanged: the row keeps its time; changed: the new text
    processor.process_folder()
    assert overview.dag_source(env.factory, "secret").updated_at == T0
    (folder / "secret.py").write_text(source + "\n# edited\n")
    processor.process_folder()
    stored = overview.dag_source(env.factory, "secret")
    assert stored.source.endswith("# edited\n") and stored.updated_at == T0 + timedelta(minutes=2)

    # a file that stops importing keeps the source of the DAGs it still holds
    (folder / "secret.py").write_text(source + "\nraise ValueError('broken')\n")
    processor.process_folder()
    assert overview.dag_source(env.factory, "secret").source.endswith("# edited\n")

    # a deleted file's source goes with it
    (folder / "secret.py").unlink()
    processor.process_folder()
    with pytest.raises(NotFoundError, match=r"the source of DAG 'secret' \(.*secret.py\) is not"):
        overview.dag_source(env.factory, "secret")
