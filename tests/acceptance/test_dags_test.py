"""`slipstream dags test` through the real CLI in subprocesses, checked in the database and
the log files.

Tests where the database matters most (the success path, retries, bad input leaving nothing
behind) run on SQLite and PostgreSQL; the rest run on SQLite to keep the set fast.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, create_engine, func, inspect, select
from sqlalchemy.orm import Session

from slipstream.store.models import DagRun, TaskInstance, TaskInstanceHistory, XCom

T = TypeVar("T")
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/x"
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

    def __call__(
        self,
        *args: str,
        ok: bool | None = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**self.env, **(env or {})},
            timeout=timeout,
            check=False,
        )
        out = result.stdout + result.stderr
        assert "Traceback" not in out, out
        if ok is True:
            assert result.returncode == 0, out
        elif ok is False:
            assert result.returncode != 0, out
        return result

    def write_dag(self, name: str, source: str) -> Path:
        path = self.dags / name
        path.write_text(textwrap.dedent(source))
        return path

    def log(self, dag_id: str, task_id: str, attempt: int = 1, run_id: str = RUN_ID) -> Path:
        return (
            self.home
            / "logs"
            / f"dag_id={dag_id}"
            / f"run_id={run_id}"
            / f"task_id={task_id}"
            / f"attempt={attempt}.log"
        )

    def logs(self, dag_id: str, task_id: str, run_id: str = RUN_ID) -> list[str]:
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def run_all(*calls: Callable[[], T]) -> list[T]:
    """Independent CLI calls at once: interpreter start-up dominates each call."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


def failed_with_sentence(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("Error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle.lower() in result.stderr.lower(), result.stderr


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Iterator[Cli]:
    yield Cli(tmp_path / "home", tmp_path / "dags", db_url)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    yield Cli(home, tmp_path / "dags", f"sqlite:///{home / 'slipstream.db'}")


@pytest.fixture
def engine_of() -> Iterator[Callable[[Cli], Engine]]:
    engines: list[Engine] = []

    def make(cli: Cli) -> Engine:
        engine = create_engine(cli.db_url)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


def tis(engine: Engine, dag_id: str, run_id: str = RUN_ID) -> dict[str, TaskInstance]:
    with Session(engine) as session:
        rows = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        )
        return {r.task_id: r for r in rows}


def history(engine: Engine, dag_id: str, task_id: str) -> list[TaskInstanceHistory]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(TaskInstanceHistory)
                .where(TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.task_id == task_id)
                .order_by(TaskInstanceHistory.try_number)
            )
        )


def runs(engine: Engine, dag_id: str | None = None) -> list[DagRun]:
    with Session(engine) as session:
        query = select(DagRun)
        if dag_id is not None:
            query = query.where(DagRun.dag_id == dag_id)
        return list(session.scalars(query))


def xcoms(engine: Engine, dag_id: str) -> dict[tuple[str, str], Any]:
    with Session(engine) as session:
        rows = session.scalars(select(XCom).where(XCom.dag_id == dag_id))
        return {(r.task_id, r.key): json.loads(r.value) for r in rows}


# --- the success path -------------------------------------------------------------------

CHAIN_DAG = """
    from datetime import datetime
    from slipstream import DAG, task
    from slipstream.operators import BashOperator, PythonOperator

    with DAG(dag_id="chain", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        hello = BashOperator(task_id="hello", bash_command="echo bash-says-hi; echo 'word-{{ ds }}'")

        @task(multiple_outputs=True)
        def split(word):
            print(f"split got {word}")
            return {"word": word, "length": len(word)}

        parts = split(hello.output)

        def report(ti):
            word = ti.xcom_pull(task_ids="split", key="word")
            length = ti.xcom_pull(task_ids="split", key="length")
            print(f"report saw {word} of length {length}")
            return {"summary": f"{word}:{length}"}

        PythonOperator(task_id="report", python_callable=report) << parts
"""


def test_success_path_records_run_xcoms_and_logs(cli: Cli, engine_of: Any) -> None:
    cli("db", "migrate")
    cli.write_dag("chain.py", CHAIN_DAG)
    result = cli("dags", "test", "chain", DATE)
    assert f"DAG run {RUN_ID} of chain succeeded" in result.stdout
    for task_id in ("hello", "split", "report"):
        assert str(cli.log("chain", task_id)) in result.stdout  # where each log is
        assert f"{task_id}: success (try 1)" in result.stdout  # one line per change

    engine = engine_of(cli)
    [run] = runs(engine, "chain")
    assert (run.run_id, run.state) == (RUN_ID, "success")
    assert run.end_date is not None
    states = {t: (ti.state, ti.try_number) for t, ti in tis(engine, "chain").items()}
    assert states == {t: ("success", 1) for t in ("hello", "split", "report")}
    assert xcoms(engine, "chain") == {
        ("hello", "return_value"): "word-2024-03-05",
        ("split", "return_value"): {"word": "word-2024-03-05", "length": 15},
        ("split", "word"): "word-2024-03-05",
        ("split", "length"): 15,
        ("report", "return_value"): {"summary": "word-2024-03-05:15"},
    }
    with Session(engine) as session:  # stored as JSON text
        raw = session.scalar(
            select(XCom.value).where(XCom.task_id == "split", XCom.key == "length")
        )
    assert raw == "15"

    expected_output = {
        "hello": "bash-says-hi",
        "split": "split got word-2024-03-05",
        "report": "report saw word-2024-03-05 of length 15",
    }
    for task_id, line in expected_output.items():
        assert cli.logs("chain", task_id) == ["attempt=1.log"]
        assert line in cli.log("chain", task_id).read_text()

    # The same logical date again replaces the earlier run: one run, fresh tries.
    cli("dags", "test", "chain", DATE)
    [again] = runs(engine, "chain")
    assert again.state == "success"
    assert {ti.try_number for ti in tis(engine, "chain").values()} == {1}
    assert len(history(engine, "chain", "hello")) == 1
    assert len(xcoms(engine, "chain")) == 5


# --- templating -------------------------------------------------------------------------


def test_on_a_terminal_the_run_shows_a_live_table(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    cli("db", "migrate")
    cli.write_dag("chain.py", CHAIN_DAG)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "slipstream", "dags", "test", "chain", DATE],
        env={**cli.env, "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command has finished
            break
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    assert process.wait(timeout=60) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "Traceback" not in screen
    assert "\x1b[" in screen  # drawn with terminal control codes, redrawn as states change
    for task_id in ("hello", "split", "report"):
        assert task_id in screen
    assert "Logs: " in screen and "task_id=<task>/attempt=<try>.log" in screen
    assert "succeeded" in screen


def test_templating_ds_params_conf_variables_and_sh_file(sqlite_cli: Cli, engine_of: Any) -> None:
    cli = sqlite_cli
    cli("db", "migrate")
    cli("variables", "set", "region", "eu-west-7")
    (cli.dags / "greet.sh").write_text('echo "from-sh ds={{ ds }} x={{ params.x }}"\n')
    cli.write_dag(
        "tpl.py",
        """
        from datetime import datetime
        from slipstream import DAG, Param
        from slipstream.operators import BashOperator

        with DAG(
            dag_id="tpl",
            schedule=None,
            start_date=datetime(2024, 1, 1),
            params={"x": Param("default-x", type="string"), "y": "default-y"},
        ) as dag:
            BashOperator(
                task_id="inline",
                bash_command=(
                    "echo 'ds={{ ds }} x={{ params.x }} y={{ params.y }} "
                    "conf={{ dag_run.conf | tojson }} var={{ var.value.region }}'"
                ),
            )
            BashOperator(task_id="from_file", bash_command="greet.sh")
        """,
    )
    cli("dags", "test", "tpl", DATE, "--conf", '{"x": "conf-x", "extra": 5}')
    inline = cli.log("tpl", "inline").read_text()
    assert (
        'ds=2024-03-05 x=conf-x y=default-y conf={"extra": 5, "x": "conf-x"} var=eu-west-7'
        in inline
    ), inline
    assert "from-sh ds=2024-03-05 x=conf-x" in cli.log("tpl", "from_file").read_text()
    engine = engine_of(cli)
    assert xcoms(engine, "tpl")[("from_file", "return_value")] == "from-sh ds=2024-03-05 x=conf-x"
    [run] = runs(engine, "tpl")
    assert run.conf == {"x": "conf-x", "extra": 5}


# --- retries, fail and skip signals -----------------------------------------------------

OUTCOMES_DAG = """
    from datetime import datetime, timedelta
    from slipstream import DAG, task
    from slipstream.exceptions import AirflowFailException, AirflowSkipException
    from slipstream.operators import BashOperator

    fast = {"retry_delay": timedelta(seconds=0.1)}
    with DAG(dag_id="outcomes", schedule=None, start_date=datetime(2024, 1, 1)) as dag:

        @task(retries=1, **fast)
        def flaky(ti=None):
            print(f"flaky on try {ti.try_number}")
            if ti.try_number == 1:
                raise RuntimeError("first try breaks")
            return "fine on try 2"

        @task(retries=1, **fast)
        def always_fails():
            print("always_fails ran")
            raise ValueError("this never works")

        @task(retries=3, **fast)
        def gives_up():
            raise AirflowFailException("no point retrying")

        @task(retries=2, **fast)
        def skips():
            raise AirflowSkipException("nothing to do today")

        flaky()
        always_fails()
        gives_up()
        skips()
        BashOperator(task_id="bash_99", bash_command="echo before-99; exit 99", retries=2, **fast)
"""


def test_retries_fail_and_skip(cli: Cli, engine_of: Any) -> None:
    cli("db", "migrate")
    cli.write_dag("outcomes.py", OUTCOMES_DAG)
    started = time.monotonic()
    result = cli("dags", "test", "outcomes", DATE, ok=False)
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert f"DAG run {RUN_ID} of outcomes failed" in result.stdout
    assert "flaky: up_for_retry (try 1)" in result.stdout

    engine = engine_of(cli)
    [run] = runs(engine, "outcomes")
    assert run.state == "failed"
    got = {t: (ti.state, ti.try_number) for t, ti in tis(engine, "outcomes").items()}
    assert got == {
        "flaky": ("success", 2),
        "always_fails": ("failed", 2),
        "gives_up": ("failed", 1),
        "skips": ("skipped", 1),
        "bash_99": ("skipped", 1),
    }
    assert [h.state for h in history(engine, "outcomes", "flaky")] == ["up_for_retry", "success"]
    assert [h.state for h in history(engine, "outcomes", "always_fails")] == [
        "up_for_retry",
        "failed",
    ]
    assert [h.state for h in history(engine, "outcomes", "gives_up")] == ["failed"]
    assert "first try breaks" in (history(engine, "outcomes", "flaky")[0].error or "")
    ti_rows = tis(engine, "outcomes")
    assert "this never works" in (ti_rows["always_fails"].error or "")
    assert "no point retrying" in (ti_rows["gives_up"].error or "")
    assert xcoms(engine, "outcomes")[("flaky", "return_value")] == "fine on try 2"

    assert cli.logs("outcomes", "flaky") == ["attempt=1.log", "attempt=2.log"]
    assert "flaky on try 1" in cli.log("outcomes", "flaky", 1).read_text()
    assert "first try breaks" in cli.log("outcomes", "flaky", 1).read_text()
    assert "flaky on try 2" in cli.log("outcomes", "flaky", 2).read_text()
    assert cli.logs("outcomes", "always_fails") == ["attempt=1.log", "attempt=2.log"]
    assert cli.logs("outcomes", "gives_up") == ["attempt=1.log"]
    assert "before-99" in cli.log("outcomes", "bash_99").read_text()
    assert "nothing to do today" in cli.log("outcomes", "skips").read_text()


# --- timeouts ---------------------------------------------------------------------------


def test_execution_timeout_kills_bash_and_python(sqlite_cli: Cli, engine_of: Any) -> None:
    cli = sqlite_cli
    marker = f"slipstream-timeout-{uuid.uuid4().hex[:12]}"
    cli("db", "migrate")
    cli.write_dag(
        "slow.py",
        f"""
        import time
        from datetime import datetime, timedelta
        from slipstream import DAG, task
        from slipstream.operators import BashOperator

        limit = {{"execution_timeout": timedelta(seconds=1)}}
        with DAG(dag_id="slow", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            BashOperator(
                task_id="slow_bash", bash_command="echo start; (exec -a {marker} sleep 30); echo done", **limit
            )

            @task(**limit)
            def slow_python():
                print("python going to sleep")
                time.sleep(30)

            slow_python()
        """,
    )
    started = time.monotonic()
    result = cli("dags", "test", "slow", DATE, ok=False)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 15, f"the run took {elapsed:.1f}s: the timeout did not stop the tasks"

    engine = engine_of(cli)
    rows = tis(engine, "slow")
    for task_id in ("slow_bash", "slow_python"):
        assert rows[task_id].state == "failed"
        assert "timed out" in (rows[task_id].error or "").lower(), rows[task_id].error
        assert "timed out" in cli.log("slow", task_id).read_text().lower()
    leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", f"the bash child outlived its task: {leftover.stdout}"


# --- trigger rules ----------------------------------------------------------------------


def test_trigger_rules_after_a_failure_and_skip_propagation(
    sqlite_cli: Cli, engine_of: Any
) -> None:
    cli = sqlite_cli
    cli("db", "migrate")
    cli.write_dag(
        "rules.py",
        """
        from datetime import datetime
        from slipstream import DAG, task
        from slipstream.exceptions import AirflowSkipException

        with DAG(dag_id="rules", schedule=None, start_date=datetime(2024, 1, 1)) as dag:

            @task
            def breaks():
                raise RuntimeError("boom")

            @task
            def skipper():
                raise AirflowSkipException("skip me")

            @task(trigger_rule="all_done")
            def all_done():
                return "ran"

            @task(trigger_rule="one_failed")
            def one_failed():
                return "ran"

            @task(trigger_rule="none_failed")
            def none_failed():
                return "ran"

            @task(trigger_rule="all_success")
            def all_success():
                return "ran"

            @task
            def after_upstream_failed():
                return "ran"

            @task
            def after_skip():
                return "ran"

            @task
            def after_after_skip():
                return "ran"

            @task(trigger_rule="none_failed")
            def none_failed_after_skip():
                return "ran"

            b = breaks()
            b >> [all_done(), one_failed(), none_failed()]
            b >> all_success() >> after_upstream_failed()
            s = skipper()
            s >> after_skip() >> after_after_skip()
            s >> none_failed_after_skip()
        """,
    )
    result = cli("dags", "test", "rules", DATE, ok=False)
    assert result.returncode == 1
    engine = engine_of(cli)
    got = {t: ti.state for t, ti in tis(engine, "rules").items()}
    assert got == {
        "breaks": "failed",
        "skipper": "skipped",
        "all_done": "success",
        "one_failed": "success",
        "none_failed": "upstream_failed",
        "all_success": "upstream_failed",
        "after_upstream_failed": "upstream_failed",
        "after_skip": "skipped",
        "after_after_skip": "skipped",
        "none_failed_after_skip": "success",
    }
    [run] = runs(engine, "rules")
    assert run.state == "failed"


# --- a value that cannot be an XCom -----------------------------------------------------


def test_unserializable_return_value_fails_the_task_clearly(
    sqlite_cli: Cli, engine_of: Any
) -> None:
    cli = sqlite_cli
    cli("db", "migrate")
    cli.write_dag(
        "bad_xcom.py",
        """
        from datetime import datetime
        from slipstream import DAG, task

        with DAG(dag_id="bad_xcom", schedule=None, start_date=datetime(2024, 1, 1)) as dag:

            @task
            def gives_object():
                return object()

            @task
            def gives_set():
                return {1, 2, 3}

            gives_object()
            gives_set()
        """,
    )
    result = cli("dags", "test", "bad_xcom", DATE, ok=False)
    engine = engine_of(cli)
    rows = tis(engine, "bad_xcom")
    for task_id, type_name in (("gives_object", "object"), ("gives_set", "set")):
        error = rows[task_id].error or ""
        assert rows[task_id].state == "failed"
        assert f"return value of task {task_id!r} cannot be stored as an XCom" in error, error
        assert type_name in error, error
        assert task_id in result.stdout
    assert xcoms(engine, "bad_xcom") == {}


# --- secrets masked in logs -------------------------------------------------------------


def test_connection_password_and_sensitive_variable_are_masked(
    sqlite_cli: Cli, engine_of: Any
) -> None:
    cli = sqlite_cli
    cli("db", "migrate")
    run_all(
        lambda: cli("connections", "add", "x", "--conn-uri", "postgres://u:s3cr3tpass@h/db"),
        lambda: cli("variables", "set", "api_key", "k3y-v4lue-zz"),
    )
    cli.write_dag(
        "leaky.py",
        """
        from datetime import datetime
        from slipstream import DAG, Connection, Variable, task
        from slipstream.operators import BashOperator

        with DAG(dag_id="leaky", schedule=None, start_date=datetime(2024, 1, 1)) as dag:

            @task
            def leak():
                conn = Connection.get("x")
                print(f"password is {conn.password}")
                print(f"api key is {Variable.get('api_key')}")
                print(f"login is {conn.login}")
                # written below Python, straight to the file descriptor, by another program
                import os
                os.system(f"echo from a subprocess {conn.password}")

            leak()
            BashOperator(task_id="leak_bash", bash_command="echo 'key={{ var.value.api_key }}'")
        """,
    )
    result = cli("dags", "test", "leaky", DATE)
    log = cli.log("leaky", "leak").read_text()
    assert "password is ***" in log and "api key is ***" in log, log
    assert "login is u" in log
    assert "from a subprocess ***" in log, log
    bash_log = cli.log("leaky", "leak_bash").read_text()
    assert "key=***" in bash_log, bash_log
    for text in (log, bash_log, result.stdout, result.stderr):
        assert "s3cr3tpass" not in text
        assert "k3y-v4lue-zz" not in text


# --- bad input: one sentence, non-zero exit, nothing written -----------------------------

GOOD_DAG = """
    from datetime import datetime
    from slipstream import DAG, Param
    from slipstream.operators import BashOperator

    with DAG(
        dag_id="good",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        params={"n": Param(1, type="integer", minimum=1)},
    ) as dag:
        BashOperator(task_id="echo", bash_command="echo good {{ params.n }}")
"""


def test_bad_input_is_one_sentence_and_writes_nothing(cli: Cli, engine_of: Any) -> None:
    cli("db", "migrate")
    cli.write_dag("good.py", GOOD_DAG)
    cli.write_dag("broken.py", "from slipstream import DAG\nwith DAG(dag_id='broken' as dag:\n")
    # All at once: several commands scanning the same folder must not collide either.
    unknown, bad_json, not_object, bad_param, bad_date, broken = run_all(
        lambda: cli("dags", "test", "goood", DATE, ok=False),
        lambda: cli("dags", "test", "good", DATE, "--conf", "{not json", ok=False),
        lambda: cli("dags", "test", "good", DATE, "--conf", "[1, 2]", ok=False),
        lambda: cli("dags", "test", "good", DATE, "--conf", '{"n": 0}', ok=False),
        lambda: cli("dags", "test", "good", "yesterday-ish", ok=False),
        lambda: cli("dags", "test", "broken", DATE, ok=False),
    )
    failed_with_sentence(unknown, "'goood'", "not found", "did you mean 'good'")
    failed_with_sentence(bad_json, "--conf is not valid JSON")
    failed_with_sentence(not_object, "--conf must be a JSON object")
    failed_with_sentence(bad_param, "'n'")
    failed_with_sentence(bad_date, "yesterday-ish", "ISO")
    failed_with_sentence(broken, "'broken'", "failed to import")
    engine = engine_of(cli)
    assert runs(engine) == []
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(TaskInstance)) == 0

    # The syntax error in one file does not stop the other DAGs of the folder.
    cli("dags", "test", "good", DATE)
    assert [r.state for r in runs(engine)] == ["success"]


def test_database_not_migrated(cli: Cli, engine_of: Any) -> None:
    cli.write_dag("good.py", GOOD_DAG)
    result = cli("dags", "test", "good", DATE, ok=False)
    failed_with_sentence(result, "migrate")
    engine = engine_of(cli)
    tables = inspect(engine).get_table_names()
    assert "dag_run" not in tables or runs(engine) == []


def test_unreachable_database(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    cli.write_dag("good.py", GOOD_DAG)
    started = time.monotonic()
    result = cli(
        "dags", "test", "good", DATE, ok=False, env={"SLIPSTREAM__DATABASE__URL": UNREACHABLE}
    )
    assert time.monotonic() - started < 30
    failed_with_sentence(result, "127.0.0.1")


# --- depends_on_past and dagrun_timeout -------------------------------------------------


def test_depends_on_past_after_a_failed_run_ends_failed_not_hung(
    sqlite_cli: Cli, engine_of: Any
) -> None:
    cli = sqlite_cli
    cli("db", "migrate")
    cli.write_dag(
        "dop.py",
        """
        from datetime import datetime
        from slipstream import DAG
        from slipstream.operators import BashOperator

        with DAG(dag_id="dop", schedule="@daily", start_date=datetime(2024, 1, 1)) as dag:
            BashOperator(
                task_id="step",
                bash_command="test '{{ ds }}' != 2024-03-04",
                depends_on_past=True,
            )
        """,
    )
    first = cli("dags", "test", "dop", "2024-03-04", ok=False, timeout=30)
    assert first.returncode == 1
    second = cli("dags", "test", "dop", DATE, ok=False, timeout=30)
    assert second.returncode == 1
    assert "Reason:" in second.stdout and "depends_on_past" in second.stdout, second.stdout
    engine = engine_of(cli)
    by_id = {r.run_id: r.state for r in runs(engine, "dop")}
    assert by_id == {"manual__2024-03-04T00:00:00+00:00": "failed", RUN_ID: "failed"}
    step = tis(engine, "dop")["step"]
    assert step.try_number == 0  # it never ran
    assert step.state != "running"


def test_dagrun_timeout_fails_the_run(sqlite_cli: Cli, engine_of: Any) -> None:
    cli = sqlite_cli
    marker = f"slipstream-dagrun-timeout-{uuid.uuid4().hex[:12]}"
    cli("db", "migrate")
    cli.write_dag(
        "capped.py",
        f"""
        from datetime import datetime, timedelta
        from slipstream import DAG
        from slipstream.operators import BashOperator

        with DAG(
            dag_id="capped",
            schedule=None,
            start_date=datetime(2024, 1, 1),
            dagrun_timeout=timedelta(seconds=1),
        ) as dag:
            BashOperator(task_id="long", bash_command="exec -a {marker} sleep 30")
        """,
    )
    started = time.monotonic()
    result = cli("dags", "test", "capped", DATE, ok=False)
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert "dagrun_timeout" in result.stdout, result.stdout
    engine = engine_of(cli)
    [run] = runs(engine, "capped")
    assert run.state == "failed"
    long = tis(engine, "capped")["long"]
    assert long.state == "failed"
    assert long.error is not None and "dagrun_timeout" in long.error
    assert [h.state for h in history(engine, "capped", "long")] == ["failed"]
    leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", leftover.stdout


def test_sigterm_stops_the_run_and_records_it(sqlite_cli: Cli, engine_of: Any) -> None:
    cli = sqlite_cli
    marker = f"slipstream-sigterm-{uuid.uuid4().hex[:12]}"
    cli("db", "migrate")
    cli.write_dag(
        "stoppable.py",
        f"""
        from datetime import datetime
        from slipstream import DAG
        from slipstream.operators import BashOperator

        with DAG(dag_id="stoppable", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            BashOperator(task_id="long", bash_command="exec -a {marker} sleep 30") >> BashOperator(
                task_id="after", bash_command="echo never"
            )
        """,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "slipstream", "dags", "test", "stoppable", DATE],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the task's program is running
            found = subprocess.run(["pgrep", "-f", marker], capture_output=True, check=False)
            if found.returncode == 0:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the task never started")
        process.terminate()
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, out + err
    assert "Traceback" not in out + err
    assert "interrupted" in out, out
    engine = engine_of(cli)
    [run] = runs(engine, "stoppable")
    assert run.state == "failed"
    states = tis(engine, "stoppable")
    assert states["long"].state == "failed"
    assert states["long"].error is not None and "stopped" in states["long"].error
    assert states["after"].state == "skipped"
    leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", leftover.stdout
