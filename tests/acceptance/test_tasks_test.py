"""`slipstream tasks test` through the real CLI: one task, its log on the terminal, nothing
recorded in the database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from slipstream.store.models import DagRun, TaskInstance, TaskInstanceHistory, XCom

T = TypeVar("T")

DAG_SOURCE = """
    from datetime import datetime
    from slipstream import DAG, task
    from slipstream.operators import BashOperator

    with DAG(
        dag_id="solo", schedule=None, start_date=datetime(2024, 1, 1), params={"who": "world"}
    ) as dag:
        first = BashOperator(task_id="first", bash_command="echo 'bash first {{ ds }}'")

        @task
        def talk(params=None):
            print(f"hello {params['who']} from talk")
            return 42

        @task
        def breaks():
            print("about to break")
            raise RuntimeError("broken on purpose")

        first >> talk() >> breaks()
"""


def run_all(*calls: Callable[[], T]) -> list[T]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


def test_tasks_test_runs_one_task_and_records_nothing(tmp_path: Path, db_url: str) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "solo.py").write_text(textwrap.dedent(DAG_SOURCE))
    env = {
        **os.environ,
        "COLUMNS": "200",
        "SLIPSTREAM_HOME": str(tmp_path / "home"),
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
        "SLIPSTREAM__DATABASE__URL": db_url,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=60,
            check=False,
        )
        return result

    assert cli("db", "migrate").returncode == 0
    # register the DAG once, so the parallel calls below do not all scan the folder
    assert cli("tasks", "list", "solo").returncode == 0
    talk, bash, breaks, conf, unknown = run_all(
        lambda: cli("tasks", "test", "solo", "talk", "2024-03-05"),
        lambda: cli("tasks", "test", "solo", "first", "2024-03-05"),
        lambda: cli("tasks", "test", "solo", "breaks", "2024-03-05"),
        lambda: cli("tasks", "test", "solo", "talk", "2024-03-05", "--conf", '{"who": "conf"}'),
        lambda: cli("tasks", "test", "solo", "nope", "2024-03-05"),
    )
    assert talk.returncode == 0, talk.stderr
    assert "hello world from talk" in talk.stdout  # the task's output, on the terminal
    assert "Task talk of solo: success" in talk.stdout
    assert "Traceback" not in talk.stdout + talk.stderr

    assert bash.returncode == 0, bash.stderr
    assert "bash first 2024-03-05" in bash.stdout

    assert conf.returncode == 0, conf.stderr
    assert "hello conf from talk" in conf.stdout

    assert breaks.returncode == 1
    assert "about to break" in breaks.stdout
    assert "broken on purpose" in breaks.stdout + breaks.stderr
    assert "Task breaks of solo: failed" in breaks.stderr

    assert unknown.returncode != 0
    assert unknown.stderr.startswith("Error: ") and "nope" in unknown.stderr, unknown.stderr
    assert "Traceback" not in unknown.stdout + unknown.stderr

    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            for model in (DagRun, TaskInstance, TaskInstanceHistory, XCom):
                assert session.scalar(select(func.count()).select_from(model)) == 0, model
    finally:
        engine.dispose()
    assert not (tmp_path / "home" / "logs" / "dag_id=solo").exists()
