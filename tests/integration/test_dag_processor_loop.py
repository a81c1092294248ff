"""The long-running DAG processor against real databases: what each check re-parses, what it
retires, its job row, and the real ``dag-processor`` command stopped by a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.dag_processor import DagProcessorLoop, PassResult
from slipstream.executors.wakeup import SCHEDULER, WakeListener, wake_folder
from slipstream.store import dags as dag_store
from slipstream.store import import_errors, jobs
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import Job
from slipstream.store.schema import migrate

GOOD = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import BashOperator

with DAG("{dag_id}", schedule="@daily", start_date=datetime(2024, 1, 1)) as dag:
    BashOperator(task_id="hello", bash_command="{command}")
"""

# Runs the real root command with ``dag-processor`` added, as ``slipstream`` will.
CLI = (
    "from slipstream.cli.main import main; "
    "from slipstream.cli.dag_processor import command; "
    "main.add_command(command); "
    "main(prog_name='slipstream')"
)


def good(dag_id: str, command: str = "echo hi") -> str:
    return GOOD.format(dag_id=dag_id, command=command)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path.resolve()


class Ticking:
    """A clock one second further on at each call, so every timestamp written differs."""

    def __init__(self) -> None:
        self.now = datetime(2024, 6, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


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
    monkeypatch.setenv("SLIPSTREAM__CORE__DAG_FILE_PROCESSOR_TIMEOUT", "5")
    config = load_config()
    engine = make_engine(config)
    migrate(engine)
    yield config, session_factory(engine)
    engine.dispose()


@pytest.fixture
def loop(env) -> Iterator[DagProcessorLoop]:
    config, factory = env
    processor_loop = DagProcessorLoop(config, factory, clock=Ticking())
    yield processor_loop
    processor_loop.close()


def parsed(result: PassResult) -> list[str]:
    return sorted(r.path.name for r in result.parsed)


def active(factory: sessionmaker[Session]) -> dict[str, str]:
    """dag_id -> file name of the active DAGs."""
    with transaction(factory) as session:
        return {
            d.dag_id: Path(d.fileloc).name
            for d in dag_store.list_dags(session, include_inactive=True)
            if d.is_active
        }


def version_count(factory: sessionmaker[Session], dag_id: str) -> int:
    with transaction(factory) as session:
        return len(dag_store.list_versions(session, dag_id))


def errors(factory: sessionmaker[Session]) -> dict[str, str]:
    with transaction(factory) as session:
        return {Path(e.filename).name: e.message for e in import_errors.list_all(session)}


def test_first_check_parses_everything_then_only_new_and_changed_files(
    env, loop: DagProcessorLoop, dags_folder: Path
) -> None:
    _, factory = env
    write(dags_folder, "a.py", good("a"))
    write(dags_folder, "b.py", good("b"))

    first = loop.run_once()
    assert first.full and parsed(first) == ["a.py", "b.py"]
    assert active(factory) == {"a": "a.py", "b": "b.py"}

    unchanged = loop.run_once()
    assert not unchanged.full and unchanged.parsed == [] and not unchanged.changed

    write(dags_folder, "c.py", good("c"))
    new = loop.run_once()
    assert parsed(new) == ["c.py"]
    assert active(factory) == {"a": "a.py", "b": "b.py", "c": "c.py"}

    # A longer command: the size changes too, whatever the file system's mtime resolution.
    write(dags_folder, "a.py", good("a", command="echo changed"))
    changed = loop.run_once()
    assert parsed(changed) == ["a.py"]
    assert version_count(factory, "a") == 2
    assert version_count(factory, "b") == 1
    assert changed.summary() == "parsed 1 file: 1 DAG, 0 import errors"

    # Touched but not edited: parsed again, and the same content makes no new version.
    stat = (dags_folder / "b.py").stat()
    os.utime(dags_folder / "b.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert parsed(loop.run_once()) == ["b.py"]
    assert version_count(factory, "b") == 1

    assert parsed(loop.run_once(full=True)) == ["a.py", "b.py", "c.py"]


def test_a_deleted_file_retires_its_dags_and_its_import_error(
    env, loop: DagProcessorLoop, dags_folder: Path
) -> None:
    _, factory = env
    write(dags_folder, "keep.py", good("keep"))
    gone = write(dags_folder, "gone.py", good("gone") + good("gone_too"))
    broken = write(dags_folder, "broken.py", "from slipstream import DAG\n1/0\n")
    loop.run_once()
    assert set(active(factory)) == {"keep", "gone", "gone_too"}
    assert list(errors(factory)) == ["broken.py"]

    gone.unlink()
    broken.unlink()
    result = loop.run_once()
    assert result.parsed == []
    assert [p.name for p in result.removed] == ["broken.py", "gone.py"]
    assert result.retired == ["gone", "gone_too"]
    assert result.summary() == "2 files gone: 2 DAGs deactivated"
    assert active(factory) == {"keep": "keep.py"}
    assert errors(factory) == {}

    # Back again: a new file to the loop, so its DAG is active again.
    write(dags_folder, "gone.py", good("gone"))
    assert parsed(loop.run_once()) == ["gone.py"]
    assert active(factory) == {"keep": "keep.py", "gone": "gone.py"}


def test_a_broken_file_becomes_an_import_error_while_the_others_stay(
    env, loop: DagProcessorLoop, dags_folder: Path
) -> None:
    _, factory = env
    write(dags_folder, "steady.py", good("steady"))
    flaky = write(dags_folder, "flaky.py", good("flaky"))
    loop.run_once()

    write(dags_folder, "new_broken.py", "from slipstream import DAG\nraise ValueError('nope')\n")
    flaky.write_text(textwrap.dedent(good("flaky")) + "\nraise RuntimeError('oops')\n")
    result = loop.run_once()
    assert parsed(result) == ["flaky.py", "new_broken.py"]
    assert result.summary() == "parsed 2 files: 0 DAGs, 2 import errors"
    assert errors(factory) == {
        "flaky.py": "RuntimeError: oops",
        "new_broken.py": "ValueError: nope",
    }
    # A file that stops importing keeps its last good DAGs; the others are untouched.
    assert active(factory) == {"steady": "steady.py", "flaky": "flaky.py"}
    assert version_count(factory, "flaky") == 1

    flaky.write_text(textwrap.dedent(good("flaky", command="echo fixed")))
    assert parsed(loop.run_once()) == ["flaky.py"]
    assert errors(factory) == {"new_broken.py": "ValueError: nope"}
    assert version_count(factory, "flaky") == 2


def test_a_dag_id_moves_to_the_next_file_when_its_holder_lets_it_go(
    env, loop: DagProcessorLoop, dags_folder: Path
) -> None:
    _, factory = env
    holder = write(dags_folder, "a.py", good("shared"))
    write(dags_folder, "b.py", good("shared", command="echo from b"))
    loop.run_once()
    assert active(factory) == {"shared": "a.py"}
    assert "already defined" in errors(factory)["b.py"]

    # a.py defines another id now: b.py, unchanged, is parsed again and takes "shared".
    write(dags_folder, "a.py", good("mine", command="echo a"))
    assert parsed(loop.run_once()) == ["a.py", "b.py"]
    assert active(factory) == {"mine": "a.py", "shared": "b.py"}
    assert errors(factory) == {}

    # The same when the holder is deleted.
    write(dags_folder, "c.py", good("mine", command="echo from c"))
    assert parsed(loop.run_once()) == ["c.py"]
    assert "already defined" in errors(factory)["c.py"]
    holder.unlink()
    assert parsed(loop.run_once()) == ["c.py"]
    assert active(factory) == {"mine": "c.py", "shared": "b.py"}
    assert errors(factory) == {}

    assert parsed(loop.run_once()) == []  # and nothing is parsed again after that


def test_the_job_is_registered_heartbeats_and_stops(
    env, loop: DagProcessorLoop, dags_folder: Path
) -> None:
    config, factory = env
    write(dags_folder, "a.py", good("a"))
    assert loop.job_id is None  # nothing written before the first check
    loop.run_once()

    def job() -> Job:
        assert loop.job_id is not None
        with transaction(factory) as session:
            row = jobs.get(session, loop.job_id)
        assert row is not None
        return row

    first = job()
    assert first.job_type == "dag_processor" and first.state == jobs.RUNNING
    assert first.pid == os.getpid() and first.detail == str(config.dags_folder)
    assert first.latest_heartbeat > first.start_date
    loop.run_once()
    second = job()
    assert second.latest_heartbeat > first.latest_heartbeat
    with transaction(factory) as session:
        live = jobs.live(session, "dag_processor", now=second.latest_heartbeat, timeout=60)
    assert [j.id for j in live] == [loop.job_id]

    loop.close()
    stopped = job()
    assert stopped.state == jobs.STOPPED and stopped.end_date is not None
    loop.close()  # a second close changes nothing
    assert job().end_date == stopped.end_date


def test_the_scheduler_is_woken_when_a_check_stored_something(
    env, loop: DagProcessorLoop, dags_folder: Path
) -> None:
    config, _ = env
    listener = WakeListener(wake_folder(config.database_url), SCHEDULER)
    try:
        write(dags_folder, "a.py", good("a"))
        loop.run_once()
        assert listener.drain() != []
        loop.run_once()
        assert listener.drain() == []  # nothing changed, nothing to look at
        (dags_folder / "a.py").unlink()
        loop.run_once()
        assert listener.drain() != []
    finally:
        listener.close()


def test_run_checks_until_asked_to_stop(
    env, dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, factory = env
    # A refresh interval far longer than the test: stopping must cut the sleep short.
    monkeypatch.setenv("SLIPSTREAM__DAG_PROCESSOR__REFRESH_INTERVAL", "3600")
    write(dags_folder, "a.py", good("a"))
    loop = DagProcessorLoop(load_config(), factory)
    passes: list[PassResult] = []
    first_pass = threading.Event()

    def on_pass(result: PassResult) -> None:
        passes.append(result)
        first_pass.set()

    thread = threading.Thread(target=loop.run, kwargs={"on_pass": on_pass})
    thread.start()
    try:
        assert first_pass.wait(60)
        loop.request_stop()
        thread.join(60)
        assert not thread.is_alive()
    finally:
        loop.request_stop()
        thread.join(60)
    assert len(passes) == 1 and passes[0].full and parsed(passes[0]) == ["a.py"]
    with transaction(factory) as session:
        row = session.scalar(select(Job).where(Job.job_type == "dag_processor"))
    assert row is not None and row.state == jobs.STOPPED


# --- the real command -------------------------------------------------------------------


@pytest.fixture
def cli_env(env, dags_folder: Path, home: Path) -> dict[str, str]:
    config, _ = env
    return {
        **os.environ,
        "SLIPSTREAM_HOME": str(home),
        "SLIPSTREAM__DATABASE__URL": config.database_url,
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags_folder),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
        "SLIPSTREAM__DAG_PROCESSOR__REFRESH_INTERVAL": "0.2",
    }


def wait_for(condition: Callable[[], bool], what: str, deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def processor_jobs(factory: sessionmaker[Session]) -> list[Job]:
    with transaction(factory) as session:
        return list(session.scalars(select(Job).where(Job.job_type == "dag_processor")))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_command_follows_edits_and_stops_cleanly_on_a_signal(
    env, cli_env: dict[str, str], dags_folder: Path, signum: signal.Signals
) -> None:
    _, factory = env
    write(dags_folder, "flow.py", good("flow"))
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, "dag-processor"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: "flow" in active(factory), "the first pass")
        write(dags_folder, "flow.py", good("flow", command="echo edited"))
        write(dags_folder, "added.py", good("added"))
        wait_for(
            lambda: version_count(factory, "flow") == 2 and "added" in active(factory),
            "the edit and the new file to be stored",
        )
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    first, *later = stdout.splitlines()
    assert first.endswith("parsed 1 file: 1 DAG, 0 import errors")
    # The edit and the new file land in one check or two, depending on when it ran.
    counts = [re.search(r"parsed (\d+) files?: (\d+) DAGs?, 0 import errors$", x) for x in later]
    assert all(counts), later
    assert sum(int(m[1]) for m in counts if m) == 2
    [job] = processor_jobs(factory)
    assert job.state == jobs.STOPPED and job.end_date is not None


def test_the_command_with_once_parses_everything_and_exits(
    env, cli_env: dict[str, str], dags_folder: Path
) -> None:
    _, factory = env
    write(dags_folder, "a.py", good("a"))
    write(dags_folder, "broken.py", "from slipstream import DAG\n1/0\n")
    result = subprocess.run(
        [sys.executable, "-c", CLI, "dag-processor", "--once"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("parsed 2 files: 1 DAG, 1 import error")
    assert active(factory) == {"a": "a.py"} and list(errors(factory)) == ["broken.py"]
    [job] = processor_jobs(factory)
    assert job.state == jobs.STOPPED
