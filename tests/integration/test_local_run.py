"""`LocalDagRun` and `service.testing` in-process, against real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import MultiFernet
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from slipstream import DAG
from slipstream.config import Config, load_config
from slipstream.errors import InvalidInputError, SlipstreamError
from slipstream.service import testing
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store.crypto import load_fernet
from slipstream.store.db import make_engine
from slipstream.store.models import AuditLog, DagRun, TaskInstance, TaskInstanceHistory, XCom
from slipstream.store.schema import migrate
from slipstream.worker.dag_test import LocalDagRun, TaskProgress

WHEN = datetime(2024, 3, 5, tzinfo=UTC)
S = TaskInstanceState


@dataclass
class Env:
    config: Config
    engine: Engine
    fernet: MultiFernet

    def runner(self, dag: DAG, events: list[tuple[str, str]] | None = None) -> LocalDagRun:
        def listen(p: TaskProgress) -> None:
            if events is not None:
                events.append((p.task_id, p.state.value))

        return LocalDagRun(
            dag=dag, config=self.config, engine=self.engine, fernet=self.fernet, listener=listen
        )

    def count(self, model: Any) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(model)) or 0

    def tis(self, dag_id: str) -> dict[str, TaskInstance]:
        with Session(self.engine) as session:
            rows = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id))
            return {r.task_id: r for r in rows}


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> Iterator[Env]:
    monkeypatch.setenv("SLIPSTREAM__DATABASE__URL", url)
    monkeypatch.setenv("SLIPSTREAM__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    config = load_config()
    engine = make_engine(config)
    migrate(engine)
    yield Env(config, engine, load_fernet(config))
    engine.dispose()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Iterator[Env]:
    yield from _env(monkeypatch, tmp_path, db_url)


@pytest.fixture
def sqlite_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> Iterator[Env]:
    yield from _env(monkeypatch, tmp_path, f"sqlite:///{home / 'slipstream.db'}")


# --- DAGs (written to files and registered like `dags test` does) ----------------------

PIPELINE = """
from datetime import datetime
from typing import Any

from slipstream import DAG, Param, task
from slipstream.operators import EmptyOperator, PythonOperator


def _produce():
    return {"n": 20}


def _double(ti):
    value = ti.xcom_pull(task_ids="produce")
    print(f"doubling {value}")
    return int(value["n"]) * 2


with DAG(
    dag_id="pipeline",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={"k": Param(3, type="integer", minimum=1)},
) as dag:
    produce = PythonOperator(task_id="produce", python_callable=_produce)
    double = PythonOperator(task_id="double", python_callable=_double)

    @task
    def add(x, params=None):
        return x + int(params["k"])

    done = EmptyOperator(task_id="done")
    produce >> double
    add(double.output) >> done
"""

FLAKY = """
from datetime import datetime, timedelta
from slipstream import DAG
from slipstream.operators import PythonOperator


def _flaky(ti):
    if ti.try_number == 1:
        raise RuntimeError("first try fails")
    return "ok"


with DAG(dag_id="flaky", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    PythonOperator(
        task_id="flaky", python_callable=_flaky, retries=2, retry_delay=timedelta(seconds=0.5)
    )
"""

DOP = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import PythonOperator


def _fail_on_first(ds):
    if ds == "2024-03-04":
        raise RuntimeError("bad day")


with DAG(dag_id="dop", schedule="@daily", start_date=datetime(2024, 1, 1)) as dag:
    PythonOperator(task_id="step", python_callable=_fail_on_first, depends_on_past=True)
"""


def _load(env: Env, dag_id: str, source: str) -> DAG:
    folder = env.config.dags_folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{dag_id}.py").write_text(source)
    return testing.load_dag(env.config, env.engine, dag_id)


def test_local_run_records_states_xcoms_and_notifies(env: Env) -> None:
    events: list[tuple[str, str]] = []
    result = env.runner(_load(env, "pipeline", PIPELINE), events).run(
        logical_date=WHEN, conf={"k": 5}, run_id="r1"
    )
    assert result.state == DagRunState.SUCCESS
    assert result.run_id == "r1"
    assert result.reason is None
    for task_id in ("produce", "double", "add", "done"):
        mine = [state for t, state in events if t == task_id]
        assert mine[0] == "none" and mine[-1] == "success" and "running" in mine, mine
        assert result.tasks[task_id].state == S.SUCCESS
        log = result.tasks[task_id].log_path
        assert log is not None and log.name == "attempt=1.log" and log.is_file()
    assert "doubling {'n': 20}" in (result.tasks["double"].log_path or Path()).read_text()

    with Session(env.engine) as session:
        run = session.scalar(select(DagRun).where(DagRun.run_id == "r1"))
        assert run is not None and run.state == "success" and run.conf == {"k": 5}
        values = {
            (x.task_id, x.key): json.loads(x.value)
            for x in session.scalars(select(XCom).where(XCom.run_id == "r1"))
        }
    assert values == {
        ("produce", "return_value"): {"n": 20},
        ("double", "return_value"): 40,
        ("add", "return_value"): 45,
    }
    assert {t: (ti.state, ti.try_number) for t, ti in env.tis("pipeline").items()} == {
        t: ("success", 1) for t in ("produce", "double", "add", "done")
    }
    assert env.count(TaskInstanceHistory) == 4

    # the same run id again replaces the run: no duplicate rows, fresh tries
    again = env.runner(testing.load_dag(env.config, env.engine, "pipeline")).run(
        logical_date=WHEN, run_id="r1"
    )
    assert again.state == DagRunState.SUCCESS
    assert env.count(DagRun) == 1
    assert env.count(TaskInstanceHistory) == 4
    with Session(env.engine) as session:
        assert session.scalar(select(XCom.value).where(XCom.task_id == "add")) == "43"


def test_invalid_params_write_nothing(env: Env) -> None:
    dag = _load(env, "pipeline", PIPELINE)
    with pytest.raises(SlipstreamError, match="'k'"):
        env.runner(dag).run(logical_date=WHEN, conf={"k": 0})
    assert env.count(DagRun) == 0
    assert env.count(TaskInstance) == 0


def test_retry_waits_for_retry_delay(sqlite_env: Env) -> None:
    dag = _load(sqlite_env, "flaky", FLAKY)
    events: list[tuple[str, str]] = []
    result = sqlite_env.runner(dag, events).run(logical_date=WHEN)
    assert result.state == DagRunState.SUCCESS
    assert [s for _, s in events] == ["none", "running", "up_for_retry", "running", "success"]
    with Session(sqlite_env.engine) as session:
        tries = list(
            session.scalars(select(TaskInstanceHistory).order_by(TaskInstanceHistory.try_number))
        )
    assert [(h.try_number, h.state) for h in tries] == [(1, "up_for_retry"), (2, "success")]
    assert tries[0].end_date is not None and tries[1].start_date is not None
    gap = (tries[1].start_date - tries[0].end_date).total_seconds()
    assert gap >= 0.45, gap


def test_depends_on_past_deadlock_has_a_reason(sqlite_env: Env) -> None:
    dag = _load(sqlite_env, "dop", DOP)
    first = sqlite_env.runner(dag).run(logical_date=WHEN - timedelta(days=1))
    assert first.state == DagRunState.FAILED
    second = sqlite_env.runner(dag).run(logical_date=WHEN)
    assert second.state == DagRunState.FAILED
    assert second.reason is not None and "depends_on_past" in second.reason
    # nothing is left unfinished in a failed run
    for ti in sqlite_env.tis("dop").values():
        assert ti.state in {"failed", "skipped"}, ti.state


def test_test_task_runs_here_and_records_nothing(
    sqlite_env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    dag = _load(sqlite_env, "pipeline", PIPELINE)
    outcome = testing.test_task(
        engine=sqlite_env.engine,
        fernet=sqlite_env.fernet,
        dag=dag,
        task_id="produce",
        logical_date=WHEN,
    )
    assert outcome.state == S.SUCCESS
    assert json.loads(outcome.xcoms["return_value"]) == {"n": 20}
    assert "Marking task as SUCCESS" in capfd.readouterr().out
    assert sqlite_env.count(DagRun) == 0
    assert sqlite_env.count(TaskInstance) == 0


def test_parse_helpers(sqlite_env: Env) -> None:
    assert testing.parse_conf(None) == {}
    assert testing.parse_conf('{"a": [1]}') == {"a": [1]}
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        testing.parse_conf("{x")
    with pytest.raises(InvalidInputError, match="JSON object"):
        testing.parse_conf('"text"')
    dag = _load(sqlite_env, "pipeline", PIPELINE)
    assert testing.parse_logical_date("2024-03-05", dag) == WHEN
    assert testing.parse_logical_date("2024-03-05T06:00:00+02:00", dag) == datetime(
        2024, 3, 5, 4, tzinfo=UTC
    )
    with pytest.raises(InvalidInputError, match="not an ISO date"):
        testing.parse_logical_date("05/03/2024", dag)


def test_a_dag_in_a_broken_file_is_reported_with_the_files_error(sqlite_env: Env) -> None:
    folder = sqlite_env.config.dags_folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nightly.py").write_text(
        "from datetime import datetime\n"
        "from slipstream import DAG\n"
        "with DAG('nightly_load', schedule='61 * * * *', start_date=datetime(2024, 1, 1)):\n"
        "    pass\n"
    )
    with pytest.raises(SlipstreamError) as caught:
        testing.load_dag(sqlite_env.config, sqlite_env.engine, "nightly_load")
    message = str(caught.value)
    assert "DAG 'nightly_load' cannot be loaded" in message
    assert "nightly.py failed to import" in message
    assert "invalid schedule '61 * * * *'" in message
    with pytest.raises(SlipstreamError, match=r"'elsewhere' not found .* failed to import"):
        testing.load_dag(sqlite_env.config, sqlite_env.engine, "elsewhere")


PRIORITIES = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import PythonOperator

with DAG(dag_id="priorities", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=1) as dag:
    # one slot, three ready tasks: the effective weight decides who runs first
    light = PythonOperator(task_id="light", python_callable=lambda: None, priority_weight=1)
    heavy = PythonOperator(task_id="heavy", python_callable=lambda: None, priority_weight=5)
    chained = PythonOperator(task_id="chained", python_callable=lambda: None, priority_weight=2)
    tail = [
        PythonOperator(task_id=f"tail{i}", python_callable=lambda: None, priority_weight=3)
        for i in range(2)
    ]
    chained >> tail  # downstream weight rule: 2 + 3 + 3 = 8, above heavy's 5
"""


def test_runs_by_effective_priority_and_audits_the_test(sqlite_env: Env) -> None:
    events: list[tuple[str, str]] = []
    dag = _load(sqlite_env, "priorities", PRIORITIES)
    result = sqlite_env.runner(dag, events).run(logical_date=WHEN, conf={}, actor="ada")
    assert result.state == DagRunState.SUCCESS
    started = [task_id for task_id, state in events if state == "running"]
    assert started == ["chained", "heavy", "tail0", "tail1", "light"], started
    weights = {t: ti.priority_weight for t, ti in sqlite_env.tis("priorities").items()}
    assert weights == {"chained": 8, "heavy": 5, "light": 1, "tail0": 3, "tail1": 3}
    with Session(sqlite_env.engine) as session:
        entries = list(session.scalars(select(AuditLog).where(AuditLog.event == "dag.test")))
    assert [(e.owner, e.dag_id, e.run_id) for e in entries] == [
        ("ada", "priorities", result.run_id)
    ]


CALLBACKS = """
import json
import time
from datetime import datetime
from pathlib import Path
from slipstream import DAG
from slipstream.operators import BashOperator

OUT = Path(__file__).parent / "callbacks.jsonl"


def _record(context):
    with OUT.open("a") as f:
        f.write(json.dumps({
            "dag_id": context["dag"].dag_id,
            "run_id": context["run_id"],
            "task_id": context["ti"].task_id,
            "reason": context["reason"],
            "ds": context["ds"],
        }) + "\\n")


with DAG(
    dag_id="callbacks",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={"code": 0},
    on_success_callback=_record,
    on_failure_callback=[_record],
) as dag:
    BashOperator(task_id="first", bash_command="true") >> BashOperator(
        task_id="last", bash_command="exit {{ params.code }}"
    )
"""


def test_dag_callbacks_run_with_the_reason(sqlite_env: Env) -> None:
    dag = _load(sqlite_env, "callbacks", CALLBACKS)
    out = sqlite_env.config.dags_folder / "callbacks.jsonl"
    ok = sqlite_env.runner(dag).run(logical_date=WHEN, run_id="ok")
    bad = sqlite_env.runner(dag).run(logical_date=WHEN, conf={"code": 3}, run_id="bad")
    assert (ok.state, bad.state) == (DagRunState.SUCCESS, DagRunState.FAILED)
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    assert calls == [
        {
            "dag_id": "callbacks",
            "run_id": "ok",
            "task_id": "last",
            "reason": "success",
            "ds": "2024-03-05",
        },
        {
            "dag_id": "callbacks",
            "run_id": "bad",
            "task_id": "last",
            "reason": "task_failure",
            "ds": "2024-03-05",
        },
    ]


STUBBORN = """
import signal
import time
from datetime import datetime, timedelta
from slipstream import DAG
from slipstream.operators import PythonOperator


def _deaf_to_the_timer():
    # the task's own timer never fires: the supervisor has to step in
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(30)


def _deaf_to_everything():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(30)


with DAG(dag_id="stubborn", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    for name, func in (("deaf_timer", _deaf_to_the_timer), ("deaf_all", _deaf_to_everything)):
        PythonOperator(
            task_id=name, python_callable=func, execution_timeout=timedelta(seconds=0.5)
        )
"""


def test_a_try_past_its_timeout_is_terminated_then_killed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    monkeypatch.setenv("SLIPSTREAM__CORE__KILLED_TASK_CLEANUP_TIME", "0.5")
    for env in _env(monkeypatch, tmp_path, f"sqlite:///{home / 'slipstream.db'}"):
        started = time.monotonic()
        result = env.runner(_load(env, "stubborn", STUBBORN)).run(logical_date=WHEN)
        assert time.monotonic() - started < 10  # not the tasks' 30 s sleeps
        assert result.state == DagRunState.FAILED
        tis = env.tis("stubborn")
        for task_id in ("deaf_timer", "deaf_all"):
            assert tis[task_id].state == "failed"
            assert tis[task_id].error == "task timed out after 0:00:00.500000 and was stopped"
        # SIGTERM reached the first (its log says so); the second needed SIGKILL
        deaf_timer_log = (result.tasks["deaf_timer"].log_path or Path()).read_text()
        assert "SIGTERM" in deaf_timer_log
        deaf_all_log = (result.tasks["deaf_all"].log_path or Path()).read_text()
        assert "Marking task as" not in deaf_all_log


PRIOR = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import PythonOperator


def _maybe_push(ds, ti):
    if ds == "2024-03-04":  # only the first run leaves a value behind
        ti.xcom_push(key="watermark", value=ds)


def _read(ti, prev_data_interval_start_success, prev_start_date_success):
    return {
        "mine": ti.xcom_pull(task_ids="push", key="watermark"),
        "prior": ti.xcom_pull(task_ids="push", key="watermark", include_prior_dates=True),
        "prev_start": str(prev_data_interval_start_success),
        "prev_run_started": prev_start_date_success is not None,
    }


with DAG(dag_id="prior", schedule="@daily", start_date=datetime(2024, 1, 1)) as dag:
    PythonOperator(task_id="push", python_callable=_maybe_push) >> PythonOperator(
        task_id="read", python_callable=_read
    )
"""


def test_prior_xcoms_and_previous_successful_run(sqlite_env: Env) -> None:
    dag = _load(sqlite_env, "prior", PRIOR)
    first = sqlite_env.runner(dag).run(logical_date=datetime(2024, 3, 4, tzinfo=UTC))
    second = sqlite_env.runner(dag).run(logical_date=WHEN)
    assert (first.state, second.state) == (DagRunState.SUCCESS, DagRunState.SUCCESS)
    with Session(sqlite_env.engine) as session:
        read = {
            x.run_id: json.loads(x.value)
            for x in session.scalars(select(XCom).where(XCom.task_id == "read"))
        }
    assert read[first.run_id] == {
        "mine": "2024-03-04",
        "prior": "2024-03-04",
        "prev_start": "None",
        "prev_run_started": False,
    }
    assert read[second.run_id] == {
        "mine": None,
        "prior": "2024-03-04",
        "prev_start": "2024-03-03 00:00:00+00:00",
        "prev_run_started": True,
    }


VANISHING = """
import os
from datetime import datetime, timedelta
from slipstream import DAG
from slipstream.operators import PythonOperator

with DAG(dag_id="vanishing", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    PythonOperator(
        task_id="gone",
        python_callable=lambda: os._exit(3),
        retries=1,
        retry_delay=timedelta(seconds=0.1),
    )
"""


def test_a_try_whose_process_dies_is_decided_by_the_supervisor(sqlite_env: Env) -> None:
    result = sqlite_env.runner(_load(sqlite_env, "vanishing", VANISHING)).run(logical_date=WHEN)
    assert result.state == DagRunState.FAILED
    gone = sqlite_env.tis("vanishing")["gone"]
    assert (gone.state, gone.try_number) == ("failed", 2)  # the first death was retried
    assert gone.error == "the task process exited with code 3 before reporting a result"
    with Session(sqlite_env.engine) as session:
        tries = session.scalars(
            select(TaskInstanceHistory.state).order_by(TaskInstanceHistory.try_number)
        )
        assert list(tries) == ["up_for_retry", "failed"]
