"""The DAG processor against real databases: DAGs, versions, import errors, deactivation."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.dag_processor import DagProcessor
from slipstream.store import dags as dag_store
from slipstream.store import import_errors
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import Dag, DagVersion
from slipstream.store.schema import migrate

GOOD = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import BashOperator, EmptyOperator

with DAG("{dag_id}", schedule="@daily", start_date=datetime(2024, 1, 1), tags=["t"],
         is_paused_upon_creation={paused}) as {dag_id}_dag:
    BashOperator(task_id="hello", bash_command="{command}") >> EmptyOperator(task_id="end")
"""

BROKEN = {
    "syntax.py": "from slipstream import DAG\ndef broken(:\n",
    "raises.py": "from slipstream import DAG\nraise ValueError('no config for this file')\n",
    "cycle.py": """
        from slipstream import DAG
        from slipstream.operators import EmptyOperator
        with DAG("cyclic") as dag:
            a = EmptyOperator(task_id="first")
            b = EmptyOperator(task_id="second")
            a >> b >> a
        """,
    "dupe_task.py": """
        from slipstream import DAG
        from slipstream.operators import EmptyOperator
        with DAG("dupe_task") as dag:
            EmptyOperator(task_id="same")
            EmptyOperator(task_id="same")
        """,
    "bad_cron.py": """
        from datetime import datetime
        from slipstream import DAG
        dag = DAG("bad_cron", schedule="61 * * * *", start_date=datetime(2024, 1, 1))
        """,
    "slow.py": "import time\nfrom slipstream import DAG\ntime.sleep(30)\n",
    "exits.py": "import os\nfrom slipstream import DAG\nos._exit(7)\n",
    "crashes.py": "import ctypes\nfrom slipstream import DAG\nctypes.string_at(0)\n",
}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def good(dag_id: str, command: str = "echo hi", paused: bool | None = None) -> str:
    return GOOD.format(dag_id=dag_id, command=command, paused=paused)


@pytest.fixture
def dags_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


@pytest.fixture
def env(
    db_url: str, dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Config, sessionmaker[Session]]]:
    monkeypatch.setenv("SLIPSTREAM__DATABASE__URL", db_url)
    monkeypatch.setenv("SLIPSTREAM__CORE__DAGS_FOLDER", str(dags_folder))
    monkeypatch.setenv("SLIPSTREAM__CORE__DAG_FILE_PROCESSOR_TIMEOUT", "1")
    config = load_config()
    engine = make_engine(config)
    migrate(engine)
    yield config, session_factory(engine)
    engine.dispose()


def dag_rows(factory: sessionmaker[Session]) -> dict[str, Dag]:
    with transaction(factory) as session:
        return {d.dag_id: d for d in dag_store.list_dags(session, include_inactive=True)}


def versions(factory: sessionmaker[Session], dag_id: str) -> list[DagVersion]:
    with transaction(factory) as session:
        return dag_store.list_versions(session, dag_id)


def errors(factory: sessionmaker[Session]) -> dict[str, str]:
    with transaction(factory) as session:
        return {Path(e.filename).name: e.message for e in import_errors.list_all(session)}


def test_stores_dags_and_versions_only_on_change(env, dags_folder: Path) -> None:
    config, factory = env
    write(dags_folder, "one.py", good("one", paused=True))
    write(dags_folder, "two.py", good("two"))
    processor = DagProcessor(config, factory)

    results = processor.process_folder()
    assert [r.dag_ids for r in results] == [["one"], ["two"]]
    assert all(r.error is None for r in results)
    rows = dag_rows(factory)
    # "two" leaves is_paused_upon_creation unset: new DAGs start paused by default.
    assert rows["one"].is_paused and rows["two"].is_paused
    assert rows["one"].is_active and rows["one"].tags == ["t"]
    assert rows["one"].timetable_summary == "@daily"
    assert rows["one"].next_dagrun is not None
    first = versions(factory, "one")
    assert len(first) == 1 and rows["one"].latest_version_id == first[0].id
    with transaction(factory) as session:
        data = dag_store.get_serialized(session, "one")
    assert data is not None and {t["task_id"] for t in data["tasks"]} == {"hello", "end"}

    processor.process_folder()  # unchanged: same version
    assert len(versions(factory, "one")) == 1

    with transaction(factory) as session:  # a user unpauses; re-parsing must not undo it
        row = session.get(Dag, "one")
        assert row is not None
        row.is_paused = False
    write(dags_folder, "one.py", good("one", command="echo changed", paused=True))
    processor.process_file(dags_folder / "one.py")
    after = versions(factory, "one")
    assert len(after) == 2
    rows = dag_rows(factory)
    assert rows["one"].latest_version_id == after[-1].id
    assert rows["one"].is_paused is False


def test_dags_are_paused_at_creation_is_the_default_a_dag_can_override(
    env, dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, factory = env
    write(dags_folder, "unset.py", good("unset"))
    write(dags_folder, "running.py", good("running", paused=False))
    write(dags_folder, "held.py", good("held", paused=True))
    monkeypatch.setenv("SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION", "false")
    DagProcessor(load_config(), factory).process_folder()
    rows = dag_rows(factory)
    assert not rows["unset"].is_paused and not rows["running"].is_paused
    assert rows["held"].is_paused

    # With the default back, a DAG seen for the first time starts paused; the DAGs already
    # stored keep their state.
    monkeypatch.delenv("SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION")
    write(dags_folder, "later.py", good("later"))
    DagProcessor(load_config(), factory).process_folder()
    rows = dag_rows(factory)
    assert rows["later"].is_paused
    assert not rows["unset"].is_paused and not rows["running"].is_paused


def test_broken_files_become_import_errors_and_good_files_are_stored(
    env, dags_folder: Path
) -> None:
    config, factory = env
    write(dags_folder, "good.py", good("good"))
    for name, text in BROKEN.items():
        write(dags_folder, name, text)

    results = {r.path.name: r for r in DagProcessor(config, factory).process_folder()}

    assert results["good.py"].dag_ids == ["good"]
    assert dag_rows(factory)["good"].is_active
    found = errors(factory)
    assert set(found) == set(BROKEN)
    assert "syntax error" in found["syntax.py"] and "line 2" in found["syntax.py"]
    assert found["raises.py"] == "ValueError: no config for this file"
    assert "cycle" in found["cycle.py"] and "first" in found["cycle.py"]
    assert "second" in found["cycle.py"]
    assert "same" in found["dupe_task.py"]
    assert "61 * * * *" in found["bad_cron.py"]
    assert "timed out after 1 s" in found["slow.py"]
    assert "exited with code 7" in found["exits.py"]
    assert "killed by SIGSEGV" in found["crashes.py"]
    with transaction(factory) as session:
        raised = import_errors.get(session, str((dags_folder / "raises.py").resolve()))
    assert raised is not None and raised.stacktrace and "raises.py" in raised.stacktrace


def test_fixing_breaking_and_deleting_files(env, dags_folder: Path) -> None:
    config, factory = env
    processor = DagProcessor(config, factory)
    path = write(dags_folder, "flow.py", good("flow"))
    processor.process_folder()

    # A file that defined DAGs breaks: the error is recorded, the DAG keeps its last version.
    write(dags_folder, "flow.py", good("flow") + "\nraise RuntimeError('oops')\n")
    result = processor.process_file(path)
    assert result.error == "RuntimeError: oops"
    assert dag_rows(factory)["flow"].is_active
    assert len(versions(factory, "flow")) == 1
    assert "flow.py" in errors(factory)

    # Fixing it clears the error.
    write(dags_folder, "flow.py", good("flow") + good("second"))
    processor.process_folder()
    assert errors(factory) == {}
    assert {"flow", "second"} <= {d for d, r in dag_rows(factory).items() if r.is_active}

    # A DAG the file no longer defines becomes inactive.
    write(dags_folder, "flow.py", good("flow"))
    processor.process_folder()
    assert not dag_rows(factory)["second"].is_active

    # A deleted file deactivates its DAGs (and forgets its import error).
    write(dags_folder, "broken.py", "from slipstream import DAG\n1/0\n")
    processor.process_folder()
    assert "broken.py" in errors(factory)
    path.unlink()
    (dags_folder / "broken.py").unlink()
    processor.process_folder()
    assert not dag_rows(factory)["flow"].is_active
    assert errors(factory) == {}


def test_same_dag_id_in_two_files_is_an_error_on_the_second(env, dags_folder: Path) -> None:
    config, factory = env
    write(dags_folder, "a.py", good("shared"))
    write(dags_folder, "b.py", good("shared", command="echo other"))
    results = {r.path.name: r for r in DagProcessor(config, factory).process_folder()}
    assert results["a.py"].dag_ids == ["shared"]
    message = errors(factory)["b.py"]
    assert "a.py" in message and "b.py" in message and "'shared'" in message
    with transaction(factory) as session:
        fileloc = session.scalar(select(Dag.fileloc).where(Dag.dag_id == "shared"))
    assert fileloc is not None and fileloc.endswith("a.py")


def test_processors_running_at_once_do_not_collide(env, dags_folder: Path) -> None:
    # `dags test` parses a file while `dags reserialize` parses the folder: both store the
    # same new DAGs, versions and import errors at the same moment.
    config, factory = env
    for i in range(3):
        write(dags_folder, f"dag{i}.py", good(f"dag{i}"))
    write(dags_folder, "broken.py", "from slipstream import DAG\n1/0\n")
    with ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(DagProcessor(config, factory).process_folder) for _ in range(3)]
        results = [r.result() for r in runs]
    assert all(len(r) == 4 for r in results)
    assert {d for d, r in dag_rows(factory).items() if r.is_active} == {"dag0", "dag1", "dag2"}
    assert all(len(versions(factory, f"dag{i}")) == 1 for i in range(3))
    assert list(errors(factory)) == ["broken.py"]
