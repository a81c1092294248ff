"""Sensors in real time through the real CLI: `dags test` in subprocesses, checked in the
database (task instances, try history, XComs) and the logs.

The DAGs run at once, in parallel, against one SQLite home: the sensor that times out takes
half a second of real waiting, and interpreter start-up dominates the rest.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from slipstream.store.models import TaskInstance, TaskInstanceHistory, XCom

DATE = "2024-01-01"
RUN_ID = "manual__2024-01-01T00:00:00+00:00"

HEADER = """
    from datetime import datetime, timedelta
    from pathlib import Path
    import time

    from slipstream import DAG, task
    from slipstream.operators import PythonOperator
    from slipstream.sensors import FileSensor, PokeReturnValue, PythonSensor

    START = datetime(2024, 1, 1)
    FAST = {"retries": 2, "retry_delay": timedelta(seconds=0.1)}
"""

DAGS = {
    # a task hands the sensor the path it then creates; the sensor waits for it
    "waits_for_file": """
        with DAG(dag_id="waits_for_file", schedule=None, start_date=START) as dag:

            @task
            def choose_path(ds_nodash=None):
                return "{folder}/landing/" + ds_nodash + "/*.csv"

            @task
            def write_later():
                time.sleep(0.4)
                folder = Path("{folder}/landing/20240101")
                folder.mkdir(parents=True)
                (folder / "orders.csv").write_text("id\\n1\\n")

            chosen = choose_path()
            sensor = FileSensor(
                task_id="wait_for_file",
                filepath="{{{{ ti.xcom_pull(task_ids='choose_path') }}}}",
                poke_interval=0.1,
                timeout=20,
            )
            chosen >> [sensor, write_later()]
            sensor >> PythonOperator(task_id="after", python_callable=lambda: "ran")
    """,
    "times_out": """
        with DAG(dag_id="times_out", schedule=None, start_date=START) as dag:
            PythonSensor(
                task_id="never", python_callable=lambda: False, poke_interval=0.1, timeout=0.5,
                **FAST,
            ) >> PythonOperator(task_id="after", python_callable=lambda: "ran")
    """,
    "soft_fails": """
        with DAG(dag_id="soft_fails", schedule=None, start_date=START) as dag:
            PythonSensor(
                task_id="never", python_callable=lambda: False, poke_interval=0.1, timeout=0.5,
                soft_fail=True, **FAST,
            ) >> PythonOperator(task_id="after", python_callable=lambda: "ran")
    """,
    "decorated": """
        with DAG(dag_id="decorated", schedule=None, start_date=START) as dag:
            pokes = []

            @task.sensor(poke_interval=0.05, timeout=10, mode="reschedule")
            def third_time_lucky():
                pokes.append(1)
                return PokeReturnValue(len(pokes) == 3, xcom_value={{"pokes": len(pokes)}})

            @task
            def use(found):
                return found["pokes"] * 10

            use(third_time_lucky())
    """,
}


@dataclass
class Home:
    root: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'slipstream.db'}"

    def __call__(self, *args: str, examples: bool = False) -> subprocess.CompletedProcess[str]:
        outside = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM")}
        env = {
            **outside,
            "COLUMNS": "200",
            "SLIPSTREAM_HOME": str(self.root / "home"),
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(self.root / "dags"),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": str(examples).lower(),
            "SLIPSTREAM__DATABASE__URL": self.db_url,
        }
        result = subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        return result

    def log(self, dag_id: str, task_id: str, attempt: int = 1) -> str:
        path = self.root / "home" / "logs" / f"dag_id={dag_id}" / f"run_id={RUN_ID}"
        return (path / f"task_id={task_id}" / f"attempt={attempt}.log").read_text()


@dataclass
class Ran:
    home: Home
    results: dict[str, subprocess.CompletedProcess[str]]
    engine: Engine

    def states(self, dag_id: str) -> dict[str, tuple[str | None, int]]:
        with Session(self.engine) as session:
            rows = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id))
            return {r.task_id: (r.state, r.try_number) for r in rows}

    def history(self, dag_id: str, task_id: str) -> list[tuple[str | None, int, str | None]]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(TaskInstanceHistory)
                .where(TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.task_id == task_id)
                .order_by(TaskInstanceHistory.try_number)
            )
            return [(r.state, r.try_number, r.error) for r in rows]

    def xcoms(self, dag_id: str) -> dict[tuple[str, str], Any]:
        with Session(self.engine) as session:
            rows = session.scalars(select(XCom).where(XCom.dag_id == dag_id))
            return {(r.task_id, r.key): json.loads(r.value) for r in rows}


def run_parallel(calls: list[Callable[[], subprocess.CompletedProcess[str]]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    root = tmp_path_factory.mktemp("sensors")
    home = Home(root)
    assert home("db", "migrate").returncode == 0
    (root / "dags").mkdir()
    for dag_id, body in DAGS.items():
        source = textwrap.dedent(HEADER) + textwrap.dedent(body).format(folder=root)
        (root / "dags" / f"{dag_id}.py").write_text(source)
    # one pass of the DAG processor first, so each `dags test` re-parses only its own file
    assert home("dags", "list").returncode == 0
    outputs = run_parallel([functools.partial(home, "dags", "test", d, DATE) for d in DAGS])
    engine = create_engine(home.db_url)
    yield Ran(home, dict(zip(DAGS, outputs, strict=True)), engine)
    engine.dispose()


def test_file_sensor_waits_for_the_file_another_task_writes(ran: Ran) -> None:
    result = ran.results["waits_for_file"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert ran.states("waits_for_file") == {
        "choose_path": ("success", 1),
        "write_later": ("success", 1),
        "wait_for_file": ("success", 1),
        "after": ("success", 1),
    }
    log = ran.home.log("waits_for_file", "wait_for_file")
    # the glob came from the upstream task's XCom, through the templated filepath
    assert f"Poking for file {ran.home.root}/landing/20240101/*.csv" in log
    assert log.count("Poking for file") >= 3  # it really waited: the file came 0.4 s later


def test_sensor_timeout_fails_without_retry(ran: Ran) -> None:
    result = ran.results["times_out"]
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"DAG run {RUN_ID} of times_out failed" in result.stdout
    assert ran.states("times_out") == {"never": ("failed", 1), "after": ("upstream_failed", 0)}
    [(state, try_number, error)] = ran.history("times_out", "never")
    assert (state, try_number) == ("failed", 1)  # retries=2, yet one try only
    assert error is not None and error.startswith("SensorTimeout: sensor timed out")
    log = ran.home.log("times_out", "never")
    assert 4 <= log.count("Poking callable") <= 8  # every 0.1 s for half a second


def test_soft_fail_skips_the_sensor_and_its_downstream(ran: Ran) -> None:
    result = ran.results["soft_fails"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert ran.states("soft_fails") == {"never": ("skipped", 1), "after": ("skipped", 0)}
    assert [h[:2] for h in ran.history("soft_fails", "never")] == [("skipped", 1)]
    assert "soft_fail" in ran.home.log("soft_fails", "never")


def test_task_sensor_pushes_its_poke_return_value(ran: Ran) -> None:
    result = ran.results["decorated"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert ran.xcoms("decorated") == {
        ("third_time_lucky", "return_value"): {"pokes": 3},
        ("use", "return_value"): 30,
    }
    log = ran.home.log("decorated", "third_time_lucky")
    assert "runs as 'poke'" in log
    assert "after 3 poke(s)" in log


def test_the_example_dag_is_fast(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert home("db", "migrate").returncode == 0
    result = home("dags", "test", "example_sensors", DATE, examples=True)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [ln for ln in result.stdout.splitlines() if "of example_sensors succeeded in" in ln]
    assert float(line.rsplit(" ", 1)[1].rstrip("s")) < 2
