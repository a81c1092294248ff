"""Branching and short-circuiting through the real CLI (``slipstream dags test``), checked
in the database.

The SQLite scenarios share one home: every DAG is its own file and every ``dags test`` runs
at once (interpreter start-up dominates each call); each test then reads its DAG's states.
One representative scenario runs on PostgreSQL too.
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

from slipstream.store.models import DagRun, TaskInstance, XCom

DATE = "2024-03-05"
RUN_ID = "manual__2024-03-05T00:00:00+00:00"

HEADER = """
from datetime import datetime
from slipstream import DAG, TriggerRule, task
from slipstream.operators import (
    BashOperator, BranchPythonOperator, EmptyOperator, PythonOperator, ShortCircuitOperator,
)
ARGS = dict(schedule=None, start_date=datetime(2024, 1, 1))
"""

DAGS: dict[str, str] = {
    # branch picks one of two paths; the join after both still runs
    "branch_one": """
        with DAG(dag_id="branch_one", **ARGS):
            pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "left")
            left = BashOperator(task_id="left", bash_command="echo went-left")
            right = BashOperator(task_id="right", bash_command="echo went-right")
            join = EmptyOperator(
                task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
            )
            after = EmptyOperator(task_id="after")
            pick >> [left, right] >> join >> after
    """,
    # a list of branches; what lies beyond the skipped one follows its trigger rule
    "branch_list": """
        def choose(ds):
            return ["a", "c"] if ds == "2024-03-05" else ["b"]

        with DAG(dag_id="branch_list", **ARGS):
            pick = BranchPythonOperator(task_id="pick", python_callable=choose)
            a, b, c = (EmptyOperator(task_id=t) for t in "abc")
            b2 = EmptyOperator(task_id="b2")
            c2 = BashOperator(task_id="c2", bash_command="echo c2")
            pick >> [a, b, c]
            b >> b2
            c >> c2
    """,
    # None follows no branch: every direct downstream task is skipped
    "branch_none": """
        with DAG(dag_id="branch_none", **ARGS):
            pick = BranchPythonOperator(task_id="pick", python_callable=lambda: None)
            a, b = EmptyOperator(task_id="a"), EmptyOperator(task_id="b")
            join = EmptyOperator(
                task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
            )
            cleanup = BashOperator(
                task_id="cleanup", bash_command="echo cleanup", trigger_rule="all_done"
            )
            pick >> [a, b] >> join >> cleanup
    """,
    # a branch naming a task it cannot follow fails, with a sentence saying why
    "branch_unknown": """
        with DAG(dag_id="branch_unknown", **ARGS):
            pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "nowhere")
            pick >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]
    """,
    "sc_true": """
        with DAG(dag_id="sc_true", **ARGS):
            check = ShortCircuitOperator(task_id="check", python_callable=lambda: "go")
            a = BashOperator(task_id="a", bash_command="echo a")
            end = EmptyOperator(task_id="end", trigger_rule="all_done")
            check >> a >> end
    """,
    # falsy, trigger rules ignored (the default): even an all_done task is skipped
    "sc_false_ignore": """
        with DAG(dag_id="sc_false_ignore", **ARGS):
            check = ShortCircuitOperator(task_id="check", python_callable=lambda: 0)
            a = BashOperator(task_id="a", bash_command="echo a")
            b = EmptyOperator(task_id="b")
            end = BashOperator(task_id="end", bash_command="echo end", trigger_rule="all_done")
            check >> a >> b >> end
    """,
    # falsy, trigger rules respected: the direct downstream task is skipped, and the rules
    # of the tasks beyond it decide (all_success skips, all_done runs)
    "sc_false_respect": """
        with DAG(dag_id="sc_false_respect", **ARGS):
            check = ShortCircuitOperator(
                task_id="check",
                python_callable=lambda: False,
                ignore_downstream_trigger_rules=False,
            )
            a = BashOperator(task_id="a", bash_command="echo a")
            b = EmptyOperator(task_id="b")
            end = BashOperator(task_id="end", bash_command="echo end", trigger_rule="all_done")
            check >> a >> b >> end
    """,
    # TaskFlow: @task.branch on an upstream's XCom, @task.bash, @task.short_circuit
    "taskflow": """
        with DAG(dag_id="taskflow", **ARGS):
            @task
            def size():
                return 7

            @task.branch
            def route(n):
                return "big" if n > 5 else "small"

            @task.bash
            def big(n):
                return f"echo big-{n}; echo 'done on {{{{ ds }}}}'"

            small = EmptyOperator(task_id="small")
            join = EmptyOperator(
                task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
            )

            @task.short_circuit
            def gate(flag):
                return flag

            @task.short_circuit(ignore_downstream_trigger_rules=False)
            def gate_rules(flag):
                return flag

            n = size()
            route(n) >> [big(n), small] >> join
            join >> gate(True) >> EmptyOperator(task_id="open")
            join >> gate_rules(False) >> EmptyOperator(task_id="closed")
    """,
}

EXPECTED: dict[str, dict[str, str]] = {
    "branch_one": {
        "pick": "success",
        "left": "success",
        "right": "skipped",
        "join": "success",
        "after": "success",
    },
    "branch_list": {
        "pick": "success",
        "a": "success",
        "b": "skipped",
        "b2": "skipped",
        "c": "success",
        "c2": "success",
    },
    "branch_none": {
        "pick": "success",
        "a": "skipped",
        "b": "skipped",
        "join": "skipped",
        "cleanup": "success",
    },
    "branch_unknown": {"pick": "failed", "a": "upstream_failed", "b": "upstream_failed"},
    "sc_true": {"check": "success", "a": "success", "end": "success"},
    "sc_false_ignore": {"check": "success", "a": "skipped", "b": "skipped", "end": "skipped"},
    "sc_false_respect": {"check": "success", "a": "skipped", "b": "skipped", "end": "success"},
    "taskflow": {
        "size": "success",
        "route": "success",
        "big": "success",
        "small": "skipped",
        "join": "success",
        "gate": "success",
        "open": "success",
        "gate_rules": "success",
        "closed": "skipped",
    },
}


@dataclass
class Home:
    """One SLIPSTREAM_HOME with its DAG folder and database, driven through the CLI."""

    root: Path
    db_url: str
    load_examples: bool = False

    @property
    def env(self) -> dict[str, str]:
        outside = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM")}
        return {
            **outside,
            "COLUMNS": "200",
            "SLIPSTREAM_HOME": str(self.root / "home"),
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(self.root / "dags"),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": str(self.load_examples).lower(),
            "SLIPSTREAM__DATABASE__URL": self.db_url,
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=self.env,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
        return result

    def write_dags(self, *dag_ids: str) -> None:
        folder = self.root / "dags"
        folder.mkdir(parents=True, exist_ok=True)
        for dag_id in dag_ids:
            source = textwrap.dedent(HEADER) + textwrap.dedent(DAGS[dag_id])
            (folder / f"{dag_id}.py").write_text(source)


@dataclass
class Ran:
    results: dict[str, subprocess.CompletedProcess[str]]
    engine: Engine


def states(engine: Engine, dag_id: str) -> dict[str, str]:
    with Session(engine) as session:
        rows = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == RUN_ID)
        )
        return {r.task_id: r.state for r in rows}


def run_state(engine: Engine, dag_id: str) -> str:
    with Session(engine) as session:
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id))
    assert state is not None
    return state


def xcoms(engine: Engine, dag_id: str) -> dict[tuple[str, str], Any]:
    with Session(engine) as session:
        rows = session.scalars(select(XCom).where(XCom.dag_id == dag_id))
        return {(r.task_id, r.key): json.loads(r.value) for r in rows}


def run_parallel(calls: list[Callable[[], subprocess.CompletedProcess[str]]]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    root = tmp_path_factory.mktemp("branching")
    home = Home(root, f"sqlite:///{root / 'slipstream.db'}")
    assert home("db", "migrate").returncode == 0
    home.write_dags(*DAGS)
    # One pass of the DAG processor first, so each `dags test` re-parses only its own file.
    assert home("dags", "list").returncode == 0
    dag_ids = list(DAGS)
    outputs = run_parallel([functools.partial(home, "dags", "test", d, DATE) for d in dag_ids])
    engine = create_engine(home.db_url)
    yield Ran(dict(zip(dag_ids, outputs, strict=True)), engine)
    engine.dispose()


@pytest.mark.parametrize("dag_id", [d for d in DAGS if d != "branch_unknown"])
def test_scenario_states(ran: Ran, dag_id: str) -> None:
    result = ran.results[dag_id]
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"DAG run {RUN_ID} of {dag_id} succeeded" in result.stdout
    assert states(ran.engine, dag_id) == EXPECTED[dag_id]
    assert run_state(ran.engine, dag_id) == "success"


def test_skipped_tasks_show_in_the_progress(ran: Ran) -> None:
    assert "right: skipped" in ran.results["branch_one"].stdout
    assert "closed: skipped" in ran.results["taskflow"].stdout


def test_branch_and_short_circuit_xcoms(ran: Ran) -> None:
    assert xcoms(ran.engine, "branch_one") == {
        ("pick", "return_value"): "left",
        ("left", "return_value"): "went-left",
    }
    assert xcoms(ran.engine, "branch_list") == {
        ("pick", "return_value"): ["a", "c"],
        ("c2", "return_value"): "c2",
    }
    assert xcoms(ran.engine, "sc_true")[("check", "return_value")] == "go"
    assert ("check", "return_value") not in xcoms(ran.engine, "sc_false_ignore")
    flow = xcoms(ran.engine, "taskflow")
    assert flow[("route", "return_value")] == "big"
    assert flow[("big", "return_value")] == "done on 2024-03-05"  # @task.bash: last line
    assert flow[("gate", "return_value")] is True
    assert ("gate_rules", "return_value") not in flow


def test_branch_to_an_unknown_task_fails_clearly(ran: Ran) -> None:
    result = ran.results["branch_unknown"]
    assert result.returncode != 0
    assert f"DAG run {RUN_ID} of branch_unknown failed" in result.stdout
    assert states(ran.engine, "branch_unknown") == EXPECTED["branch_unknown"]
    assert run_state(ran.engine, "branch_unknown") == "failed"
    with Session(ran.engine) as session:
        error = session.scalar(
            select(TaskInstance.error).where(
                TaskInstance.dag_id == "branch_unknown", TaskInstance.task_id == "pick"
            )
        )
    assert error == (
        "BranchError: branch task 'pick' chose 'nowhere', not a task of the DAG; "
        "its direct downstream tasks are 'a', 'b'"
    )
    assert "chose 'nowhere', not a task of the DAG" in result.stdout


def test_branch_on_each_database(tmp_path: Path, db_url: str) -> None:
    """The representative scenario on SQLite and PostgreSQL: skips written with the try."""
    home = Home(tmp_path, db_url)
    assert home("db", "migrate").returncode == 0
    home.write_dags("branch_one", "sc_false_respect")
    one, sc = run_parallel(
        [
            lambda: home("dags", "test", "branch_one", DATE),
            lambda: home("dags", "test", "sc_false_respect", DATE),
        ]
    )
    assert one.returncode == 0, one.stdout + one.stderr
    assert sc.returncode == 0, sc.stdout + sc.stderr
    engine = create_engine(db_url)
    try:
        assert states(engine, "branch_one") == EXPECTED["branch_one"]
        assert states(engine, "sc_false_respect") == EXPECTED["sc_false_respect"]
        with Session(engine) as session:
            right = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == "branch_one", TaskInstance.task_id == "right"
                )
            ).one()
            pick_end = session.scalar(
                select(TaskInstance.end_date).where(
                    TaskInstance.dag_id == "branch_one", TaskInstance.task_id == "pick"
                )
            )
        # skipped in the same transaction as the branch's end: same instant, never started
        assert (right.try_number, right.start_date) == (0, None)
        assert right.end_date == pick_end
    finally:
        engine.dispose()


def test_the_example_dag(tmp_path: Path) -> None:
    """example_branching on a Saturday with publish off: the weekend path, nothing published."""
    home = Home(tmp_path, f"sqlite:///{tmp_path / 'slipstream.db'}", load_examples=True)
    assert home("db", "migrate").returncode == 0
    saturday = "2024-03-09"
    result = home("dags", "test", "example_branching", saturday, "--conf", '{"publish": false}')
    assert result.returncode == 0, result.stdout + result.stderr
    engine = create_engine(home.db_url)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(
                    TaskInstance.dag_id == "example_branching"
                )
            )
            assert {task_id: state for task_id, state in rows} == {
                "choose": "success",
                "weekday": "skipped",
                "weekend": "success",
                "join": "success",
                "should_publish": "success",
                "publish": "skipped",
                "done": "skipped",
            }
    finally:
        engine.dispose()
