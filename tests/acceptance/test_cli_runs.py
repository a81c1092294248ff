"""Runs driven as a user would, through the real CLI in subprocesses: trigger, pause and
unpause a DAG; look at its runs, task states and logs; clear tasks so they run again.

Runs with task states, tries and logs come from `slipstream dags test`, so no scheduler is
needed. Tests where the database matters most run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from slipstream.store.models import AuditLog, Dag, DagRun, TaskInstance, TaskInstanceHistory

DATE = "2024-03-05"
RUN_ID = "manual__2024-03-05T00:00:00+00:00"


# --- helpers --------------------------------------------------------------------------


class Cli:
    """Runs the CLI against one home, one DAG folder and one database."""

    def __init__(self, home: Path, dags: Path, db_url: str) -> None:
        self.home, self.dags, self.db_url = home, dags, db_url
        dags.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "COLUMNS": "200",
            "SLIPSTREAM_HOME": str(home),
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
            "SLIPSTREAM__DATABASE__URL": db_url,
        }
        self._engine: Engine | None = None

    def __call__(
        self, *args: str, ok: bool | None = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        out = result.stdout + result.stderr
        # (only stderr: a task's log, printed on stdout, may hold the task's own traceback)
        assert "Traceback" not in result.stderr, out
        if ok is True:
            assert result.returncode == 0, out
        elif ok is False:
            assert result.returncode != 0, out
        return result

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "slipstream", *args]

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def write_dag(self, name: str, source: str) -> Path:
        path = self.dags / name
        path.write_text(textwrap.dedent(source))
        return path

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.db_url)
        return self._engine

    def runs(self, dag_id: str) -> dict[str, DagRun]:
        with Session(self.engine) as session:
            rows = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id))
            return {r.run_id: r for r in rows}

    def tis(self, dag_id: str, run_id: str = RUN_ID) -> dict[str, TaskInstance]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
                )
            )
            return {r.task_id: r for r in rows}

    def states(self, dag_id: str, run_id: str = RUN_ID) -> dict[str, str]:
        return {t: ti.state for t, ti in self.tis(dag_id, run_id).items()}

    def history(self, dag_id: str, task_id: str, run_id: str = RUN_ID) -> list[str]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(TaskInstanceHistory)
                .where(
                    TaskInstanceHistory.dag_id == dag_id,
                    TaskInstanceHistory.run_id == run_id,
                    TaskInstanceHistory.task_id == task_id,
                )
                .order_by(TaskInstanceHistory.try_number)
            )
            return [r.state for r in rows]

    def audit(self, event: str | None = None) -> list[AuditLog]:
        with Session(self.engine) as session:
            query = select(AuditLog).order_by(AuditLog.id)
            if event is not None:
                query = query.where(AuditLog.event == event)
            return list(session.scalars(query))

    def count(self, model: Any) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(model)) or 0

    def is_paused(self, dag_id: str) -> bool:
        with Session(self.engine) as session:
            row = session.get(Dag, dag_id)
            assert row is not None
            return row.is_paused

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def failed_with_sentence(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle.lower() in result.stderr.lower(), result.stderr


def fails_with(cli: Cli, cases: dict[tuple[str, ...], tuple[str, ...]]) -> None:
    """Each command of ``cases`` fails with one sentence holding the given words. They run
    at once: interpreter start-up dominates each call."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = {args: pool.submit(cli, *args, ok=False) for args in cases}
        for args, needles in cases.items():
            failed_with_sentence(results[args].result(), *needles)


@pytest.fixture
def cli(tmp_path: Path, home: Path) -> Iterator[Cli]:
    # The CLI on SQLite only: these commands call the same service functions on every
    # database, and tests/integration runs those on SQLite and PostgreSQL.
    cli = Cli(tmp_path / "home", tmp_path / "dags", f"sqlite:///{home / 'slipstream.db'}")
    yield cli
    cli.close()


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    cli = Cli(home, tmp_path / "dags", f"sqlite:///{home / 'slipstream.db'}")
    yield cli
    cli.close()


FLOW_DAG = """
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo
    from slipstream import DAG, Param, task
    from slipstream.operators import BashOperator

    fast = {"retry_delay": timedelta(seconds=0.1)}
    with DAG(
        dag_id="flow",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        params={"n": Param(1, type="integer", minimum=0)},
    ) as dag:

        @task(retries=1, **fast)
        def first(ti=None):
            print(f"first on try {ti.try_number}")
            if ti.try_number == 1:
                raise RuntimeError("first try breaks")

        @task(retries=1, **fast)
        def second():
            print("second runs")
            raise ValueError("second always fails, with a message longer than a table cell\\nline two")

        after = BashOperator(task_id="after", bash_command="echo after")
        BashOperator(task_id="other", bash_command="echo other-ran")
        first() >> second() >> after

    with DAG("in_paris", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))):
        BashOperator(task_id="noop", bash_command="true")
"""

FAILED_RUN_STATES = {
    "first": "success",
    "second": "failed",
    "after": "upstream_failed",
    "other": "success",
}


def failed_flow_run(cli: Cli) -> None:
    cli("db", "migrate")
    cli.write_dag("flow.py", FLOW_DAG)
    cli("dags", "test", "flow", DATE, ok=False)
    assert cli.states("flow") == FAILED_RUN_STATES


# --- trigger, pause, unpause, state, runs ------------------------------------------------


def test_trigger_creates_a_queued_run_of_a_paused_dag(cli: Cli) -> None:
    cli("db", "migrate")
    cli.write_dag("flow.py", FLOW_DAG)

    # A fresh database: trigger parses the DAG files first. New DAGs start paused.
    result = cli("dags", "trigger", "flow", "-c", '{"n": 3}', "-l", "2024-03-06", "-o", "json")
    run = json.loads(result.stdout)
    assert run["run_id"] == "manual__2024-03-06T00:00:00+00:00"
    assert (run["state"], run["conf"], run["is_paused"]) == ("queued", {"n": 3}, True)
    assert (
        "DAG flow is paused: the run waits, queued, until `slipstream dags unpause flow`"
        in result.stderr
    )

    [stored] = cli.runs("flow").values()
    assert (stored.run_id, stored.state, stored.conf) == (run["run_id"], "queued", {"n": 3})
    assert stored.run_type == "manual" and stored.end_date is None
    assert stored.logical_date is not None and stored.logical_date.isoformat().startswith(
        "2024-03-06T00:00:00"
    )
    assert cli.states("flow", run["run_id"]) == {t: "none" for t in FAILED_RUN_STATES}
    [audit] = cli.audit("dag.trigger")
    assert (audit.dag_id, audit.run_id) == ("flow", run["run_id"])

    # For people: key/value lines, and the warning.
    table = cli("dags", "trigger", "flow", "--run-id", "by-hand")
    assert "by-hand" in table.stdout and "queued" in table.stdout
    assert "is paused" in table.stderr

    # A naive logical date is a wall-clock time in the DAG's time zone.
    paris = json.loads(
        cli("dags", "trigger", "in_paris", "-l", "2024-07-01T12:00", "-o", "json").stdout
    )
    assert paris["logical_date"] == "2024-07-01T10:00:00+00:00"

    assert cli("dags", "state", "flow", "by-hand").stdout == "queued\n"
    state = cli.json("dags", "state", "flow", run["run_id"])
    assert state["state"] == "queued" and state["queued_at"] is not None
    assert state["start_date"] is None and state["end_date"] is None


def test_bad_trigger_input_writes_nothing(cli: Cli) -> None:
    cli("db", "migrate")
    cli.write_dag("flow.py", FLOW_DAG)
    cli("dags", "trigger", "flow", "-r", "taken")
    runs, audits = cli.count(DagRun), cli.count(AuditLog)

    fails_with(
        cli,
        {
            ("dags", "trigger", "flow", "-c", '{"n": '): ("not valid JSON",),
            ("dags", "trigger", "flow", "-c", "[1]"): ("JSON object",),
            ("dags", "trigger", "flow", "-c", '{"n": "three"}'): ("param 'n'",),
            ("dags", "trigger", "flow", "-c", '{"n": -1}'): ("param 'n'",),
            ("dags", "trigger", "flwo"): ("'flwo' does not exist", "did you mean 'flow'"),
            ("dags", "trigger", "flow", "-r", "taken"): ("already has a run 'taken'",),
            ("dags", "trigger", "flow", "-l", "next tuesday"): ("not an ISO date",),
        },
    )
    assert (cli.count(DagRun), cli.count(AuditLog)) == (runs, audits)


def test_pause_and_unpause_flip_the_flag_and_are_audited(cli: Cli) -> None:
    cli("db", "migrate")
    cli.write_dag("flow.py", FLOW_DAG)
    cli("dags", "reserialize")
    assert cli.is_paused("flow")  # new DAGs start paused

    assert "DAG flow is unpaused." in cli("dags", "unpause", "flow").stdout
    assert not cli.is_paused("flow")
    listed = {d["dag_id"]: d for d in cli.json("dags", "list")}
    assert listed["flow"]["is_paused"] is False
    triggered = cli("dags", "trigger", "flow")
    assert "paused" not in triggered.stderr

    assert "DAG flow is paused." in cli("dags", "pause", "flow").stdout
    assert cli.is_paused("flow")
    assert [(a.event, a.dag_id) for a in cli.audit() if a.event.startswith("dag.")] == [
        ("dag.unpause", "flow"),
        ("dag.trigger", "flow"),
        ("dag.pause", "flow"),
    ]
    audits = cli.count(AuditLog)
    failed_with_sentence(cli("dags", "pause", "flo", ok=False), "did you mean 'flow'")
    failed_with_sentence(cli("dags", "unpause", "nope", ok=False), "'nope' does not exist")
    assert cli.count(AuditLog) == audits


def test_runs_lists_newest_first_with_filters(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    failed_flow_run(cli)
    cli("dags", "trigger", "flow", "-l", "2024-03-07")
    cli("dags", "trigger", "flow", "-l", "2024-03-06")

    runs = cli.json("dags", "runs", "flow")
    assert [(r["logical_date"][:10], r["state"]) for r in runs] == [
        ("2024-03-07", "queued"),
        ("2024-03-06", "queued"),
        ("2024-03-05", "failed"),
    ]
    finished = runs[2]
    assert finished["run_id"] == RUN_ID and finished["run_type"] == "manual"
    assert finished["duration"] is not None and finished["duration"] >= 0
    assert runs[0]["duration"] is None and runs[0]["start_date"] is None

    assert [r["run_id"] for r in cli.json("dags", "runs", "flow", "--state", "failed")] == [RUN_ID]
    assert len(cli.json("dags", "runs", "flow", "-n", "1")) == 1
    table = cli("dags", "runs", "flow").stdout
    for column in ("run_id", "run_type", "state", "logical_date", "queued_at", "duration"):
        assert column in table
    assert "No runs of in_paris." in cli("dags", "runs", "in_paris").stdout

    assert cli("dags", "state", "flow", RUN_ID).stdout == "failed\n"
    state = cli.json("dags", "state", "flow", RUN_ID)
    assert state["state"] == "failed" and state["end_date"] is not None

    failed_with_sentence(cli("dags", "state", "flow", "nope", ok=False), "has no run 'nope'")
    failed_with_sentence(cli("dags", "state", "flwo", RUN_ID, ok=False), "did you mean 'flow'")
    failed_with_sentence(cli("dags", "runs", "flwo", ok=False), "did you mean 'flow'")


# --- task states and logs ---------------------------------------------------------------


def test_task_states_of_a_run(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    failed_flow_run(cli)
    rows = {r["task_id"]: r for r in cli.json("tasks", "states", "flow", RUN_ID)}
    assert {t: r["state"] for t, r in rows.items()} == FAILED_RUN_STATES
    assert (rows["first"]["try_number"], rows["first"]["tries"]) == (2, 2)
    assert (rows["second"]["try_number"], rows["second"]["tries"]) == (2, 2)
    assert (rows["after"]["try_number"], rows["after"]["tries"]) == (0, 1)
    assert rows["other"]["duration"] is not None and rows["other"]["hostname"]
    assert rows["after"]["start_date"] is None
    # the whole error in JSON, its first line cut short in the table
    assert rows["second"]["error"].endswith("longer than a table cell\nline two")
    table = cli("tasks", "states", "flow", RUN_ID).stdout
    assert "ValueError: second always fails" in table and "…" in table
    assert "line two" not in table and "table cell" not in table
    order = list(rows)  # in dependency order
    assert order.index("first") < order.index("second") < order.index("after")

    failed_with_sentence(cli("tasks", "states", "flow", "nope", ok=False), "has no run 'nope'")
    failed_with_sentence(cli("tasks", "states", "flw", RUN_ID, ok=False), "did you mean 'flow'")


def test_task_logs_of_each_try(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    failed_flow_run(cli)
    latest = cli("tasks", "logs", "flow", RUN_ID, "first").stdout
    assert "first on try 2" in latest and "first on try 1" not in latest
    first_try = cli("tasks", "logs", "flow", RUN_ID, "first", "--try", "1").stdout
    assert "first on try 1" in first_try and "first try breaks" in first_try
    assert "first on try 2" not in first_try
    assert "other-ran" in cli("tasks", "logs", "flow", RUN_ID, "other").stdout
    # a finished try is printed whole with --follow too, which then ends at once
    assert "first on try 2" in cli("tasks", "logs", "flow", RUN_ID, "first", "-f").stdout

    fails_with(
        cli,
        {
            ("tasks", "logs", "flow", RUN_ID, "after"): ("has not started",),
            ("tasks", "logs", "flow", RUN_ID, "first", "--try", "3"): ("no try 3",),
            ("tasks", "logs", "flow", RUN_ID, "first", "--try", "0"): ("starts at 1",),
            ("tasks", "logs", "flow", RUN_ID, "frist"): ("no task 'frist'", "'first'"),
            ("tasks", "logs", "flow", "nope", "first"): ("no run",),
        },
    )

    log = cli.home / "logs" / "dag_id=flow" / f"run_id={RUN_ID}" / "task_id=other" / "attempt=1.log"
    log.unlink()
    failed_with_sentence(cli("tasks", "logs", "flow", RUN_ID, "other", ok=False), "left no log")


SLOW_DAG = """
    from datetime import datetime
    from slipstream import DAG
    from slipstream.operators import BashOperator

    with DAG(dag_id="slow", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        BashOperator(
            task_id="ticker",
            bash_command="for i in 1 2 3 4 5 6; do echo tick-$i; sleep {pause}; done; echo done-ticking",
        )
"""


def _start_slow_run(cli: Cli, pause: float) -> subprocess.Popen[str]:
    cli("db", "migrate")
    cli.write_dag("slow.py", SLOW_DAG.replace("{pause}", str(pause)))
    run = subprocess.Popen(
        cli.argv("dags", "test", "slow", DATE),
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 30
    while cli.tis("slow").get("ticker") is None or cli.tis("slow")["ticker"].state != "running":
        assert time.monotonic() < deadline, "the task never started"
        assert run.poll() is None, "dags test ended early"
        time.sleep(0.05)
    return run


def test_logs_follow_prints_until_the_try_ends(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    run = _start_slow_run(cli, pause=0.4)
    try:
        follow = subprocess.run(
            cli.argv("tasks", "logs", "slow", RUN_ID, "ticker", "--follow"),
            env=cli.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        # It ended because the try did: the task instance is no longer running.
        assert cli.states("slow")["ticker"] == "success"
    finally:
        run.wait(timeout=60)
    assert follow.returncode == 0, follow.stderr
    lines = follow.stdout.splitlines()
    ticks = [line for line in lines if line.startswith("tick-")]
    assert ticks == [f"tick-{i}" for i in range(1, 7)]
    assert "done-ticking" in follow.stdout  # written just before the try ended


def test_logs_follow_stops_quietly_on_ctrl_c(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    run = _start_slow_run(cli, pause=2)
    seen: list[str] = []
    try:
        with subprocess.Popen(
            cli.argv("tasks", "logs", "slow", RUN_ID, "ticker", "-f"),
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        ) as follow:
            out, err = follow.stdout, follow.stderr
            assert out is not None and err is not None
            reader = threading.Thread(target=lambda: seen.extend(out), daemon=True)
            reader.start()
            deadline = time.monotonic() + 30
            while "tick-1\n" not in seen:  # it is following
                assert time.monotonic() < deadline and follow.poll() is None, seen
                time.sleep(0.05)
            follow.send_signal(signal.SIGINT)
            assert follow.wait(timeout=10) == 0
            reader.join(timeout=10)
            errors = err.read()
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=60)
    assert "done-ticking\n" not in seen  # it stopped before the try ended
    assert "Traceback" not in "".join(seen) + errors and "Error" not in errors


# --- clearing ----------------------------------------------------------------------------


def test_clear_a_failed_task_with_its_downstream(cli: Cli) -> None:
    failed_flow_run(cli)
    before = cli.tis("flow")
    assert before["second"].try_number == 2 and before["second"].max_tries == 1

    # Piped, without --yes: it shows what it would clear, then refuses; nothing changes.
    refused = cli("tasks", "clear", "flow", "-t", "^sec", "-d", ok=False)
    assert (
        "second" in refused.stdout and "after" in refused.stdout and "first" not in refused.stdout
    )
    failed_with_sentence(refused, "2 task instance(s) in 1 run(s)", "--yes")
    assert cli.states("flow") == FAILED_RUN_STATES
    assert cli.audit("task.clear") == []

    result = cli("tasks", "clear", "flow", "-t", "^sec", "--downstream", "--run-id", RUN_ID, "-y")
    assert "Cleared 2 task instance(s) in 1 run(s)." in result.stdout
    assert cli.states("flow") == {**FAILED_RUN_STATES, "second": "none", "after": "none"}
    after = cli.tis("flow")
    second = after["second"]
    # all its retries again; the finished tries stay in the history
    assert (second.try_number, second.max_tries) == (2, 2 + 1)
    assert second.end_date is None and second.error is None and second.duration is None
    assert cli.history("flow", "second") == ["up_for_retry", "failed"]
    assert (after["after"].try_number, after["after"].max_tries) == (0, 0)
    assert after["first"].max_tries == before["first"].max_tries  # untouched
    run = cli.runs("flow")[RUN_ID]
    assert (run.state, run.end_date) == ("queued", None)
    [audit] = cli.audit("task.clear")
    assert (audit.dag_id, audit.run_id) == ("flow", RUN_ID)
    assert json.loads(audit.extra or "{}")["tasks"] == {
        "second": "failed",
        "after": "upstream_failed",
    }

    # nothing is left to clear in state none
    assert "Nothing to clear." in cli("tasks", "clear", "flow", "-t", "^sec", "-d", "-y").stdout


def test_clear_only_failed_and_upstream(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    failed_flow_run(cli)
    cleared = cli.json("tasks", "clear", "flow", "--only-failed", "--yes")
    assert {(c["run_id"], c["task_id"], c["old_state"]) for c in cleared} == {
        (RUN_ID, "second", "failed"),
        (RUN_ID, "after", "upstream_failed"),
    }
    assert cli.states("flow") == {**FAILED_RUN_STATES, "second": "none", "after": "none"}

    # With --upstream, "first" (upstream of "second") is chosen too; "second" is already
    # none, so only "first" changes, and "other" (not related) stays.
    cleared = cli.json("tasks", "clear", "flow", "-t", "^second$", "-u", "-y")
    assert {c["task_id"] for c in cleared} == {"first"}  # "second" is already none
    assert cli.states("flow")["first"] == "none"
    assert cli.states("flow")["other"] == "success"
    assert cli.tis("flow")["first"].max_tries == 2 + 1


def test_clear_filters_runs_by_id_and_logical_date(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    failed_flow_run(cli)
    cli("dags", "test", "flow", "2024-03-08", ok=False)
    later = "manual__2024-03-08T00:00:00+00:00"

    in_range = cli.json(
        "tasks", "clear", "flow", "-f", "-s", "2024-03-07", "-e", "2024-03-09", "-y"
    )
    assert {c["run_id"] for c in in_range} == {later}
    assert cli.states("flow") == FAILED_RUN_STATES  # the earlier run is out of range
    assert cli.runs("flow")[later].state == "queued"

    every = cli.json("tasks", "clear", "flow", "-t", "other", "-y")
    assert {(c["run_id"], c["task_id"]) for c in every} == {(RUN_ID, "other"), (later, "other")}

    fails_with(
        cli,
        {
            ("tasks", "clear", "flow", "--run-id", "nope", "-y"): ("no run",),
            ("tasks", "clear", "flow", "-t", "zzz", "-y"): ("matches 'zzz'",),
            ("tasks", "clear", "flow", "-t", "(", "-y"): ("not a valid regex",),
            ("tasks", "clear", "flw", "-y"): ("did you mean 'flow'",),
            ("tasks", "clear", "flow", "-s", "2024-03-09", "-e", "2024-03-01", "-y"): ("is after",),
            ("tasks", "clear", "flow", "-s", "soon", "-y"): ("ISO date",),
        },
    )


def test_clear_asks_on_a_terminal(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    failed_flow_run(cli)

    def answer(reply: bytes) -> tuple[int, str]:
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            cli.argv("tasks", "clear", "flow", "-f"),
            env={**cli.env, "TERM": "dumb"},
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
        )
        os.close(terminal)
        screen = b""
        while b"[y/N]" not in screen:
            screen += os.read(controller, 65536)
        os.write(controller, reply + b"\n")
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # the terminal closed: the command has finished
                break
            if not data:
                break
            screen += data
        os.close(controller)
        return process.wait(timeout=60), screen.decode(errors="replace")

    code, screen = answer(b"n")
    assert code == 1 and "Aborted" in screen and "Traceback" not in screen
    assert cli.states("flow") == FAILED_RUN_STATES

    code, screen = answer(b"y")
    assert code == 0, screen
    assert "Clear 2 task instance(s) in 1 run(s)?" in screen
    assert "Cleared 2 task instance(s) in 1 run(s)." in screen
    assert cli.states("flow") == {**FAILED_RUN_STATES, "second": "none", "after": "none"}
