"""Task logs shipped to the database, read from a host without the log file: real worker
processes write and ship them, and the readers (service, REST API, CLI) find the same bytes
the file had, from any offset, while the try runs and after. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.dag_processor import DagProcessor
from slipstream.roles import Role
from slipstream.service import inspection
from slipstream.service.runs import trigger_dag
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store import users as user_store
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import DagRun, TaskLogChunk
from slipstream.store.schema import migrate
from slipstream.store.task_instances import TIKey
from slipstream.task_logs import try_log_path
from slipstream.worker.log_shipping import LogShipper

S = TaskInstanceState
T0 = datetime(2024, 5, 1, tzinfo=UTC)
CAP = 20_000
DEADLINE = 60.0

DAG_FILE = """
import pathlib
import time
from datetime import datetime
from slipstream import DAG
from slipstream.operators import PythonOperator

def talk():
    for i in range(300):
        print(f"line {i}: é € 𝄞 " + "x" * (i % 40))

def flood():
    for i in range(1000):
        print(f"flood {i:04d} " + "y" * 40)

def wait():
    print("first line, before the marker", flush=True)
    while not pathlib.Path(MARKER).exists():
        time.sleep(0.05)
    print("second line, after the marker")

with DAG("logs", schedule=None, start_date=datetime(2024, 1, 1)):
    PythonOperator(task_id="talk", python_callable=talk)
    PythonOperator(task_id="flood", python_callable=flood)
    PythonOperator(task_id="wait", python_callable=wait)
"""


@dataclass
class Env:
    config: Config
    engine: Engine
    factory: sessionmaker[Session]
    environ: dict[str, str]
    marker: Path
    #: the log folder of a host where no task ran: its readers must use the database
    elsewhere: Path
    runs: int = 0

    def queue(self, *task_ids: str) -> str:
        """A run of DAG "logs" with ``task_ids`` queued, as the scheduler leaves them."""
        self.runs += 1
        day = T0 + timedelta(days=self.runs)
        run_id = trigger_dag(self.factory, "logs", now=T0, logical_date=day).run_id
        with transaction(self.factory) as session:
            run_store.set_dag_run_state(session, "logs", run_id, DagRunState.RUNNING, T0)
            for task_id in task_ids:
                assert ti_store.set_state(
                    session,
                    TIKey("logs", run_id, task_id),
                    expected={S.NONE},
                    new=S.QUEUED,
                    now=T0,
                    try_number=1,
                    queued_at=T0,
                )
        return run_id

    def worker(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "slipstream", "worker", "--burst"],
            env=self.environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def log_file(self, run_id: str, task_id: str) -> Path:
        return try_log_path(self.config.log_folder, "logs", run_id, task_id, 1)

    def find(self, run_id: str, task_id: str, folder: Path | None = None) -> inspection.TryLog:
        folder = folder or self.config.log_folder
        return inspection.find_try_log(self.factory, folder, "logs", run_id, task_id, 1, wait=True)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    dags = tmp_path / "dags"
    dags.mkdir()
    marker = tmp_path / "marker"
    (dags / "logs.py").write_text(DAG_FILE.replace("MARKER", repr(str(marker))))
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM")},
        "SLIPSTREAM_HOME": str(tmp_path / "home"),
        "SLIPSTREAM__DATABASE__URL": db_url,
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
        "SLIPSTREAM__LOGGING__SHIP_TO_DATABASE": "true",
        "SLIPSTREAM__LOGGING__MAX_SHIPPED_BYTES_PER_TRY": str(CAP),
        "SLIPSTREAM__WORKER__HEARTBEAT_INTERVAL": "0.2",
    }
    config = load_config(environ)
    engine = make_engine(config)
    migrate(engine)
    factory = session_factory(engine)
    results = DagProcessor(config, factory).process_folder()
    assert [r.error for r in results if r.error] == []
    yield Env(config, engine, factory, environ, marker, tmp_path / "elsewhere")
    engine.dispose()


def read_in_pieces(log: inspection.TryLog, max_bytes: int) -> str:
    """The whole log, read as a live tail reads it: from each answer's next offset."""
    pieces, offset = [], 0
    while True:
        chunk = inspection.read_log_chunk(log, offset, max_bytes)
        assert chunk.next_offset - offset == len(chunk.content.encode())
        pieces.append(chunk.content)
        offset = chunk.next_offset
        if not chunk.more:
            return "".join(pieces)


def api_client(env: Env) -> tuple[FlaskClient, dict[str, str]]:
    from werkzeug.security import generate_password_hash

    from slipstream.web import create_app

    with transaction(env.factory) as session:
        user_store.add(
            session,
            username="viewer",
            role=Role.VIEWER.value,
            password_hash=generate_password_hash("pw", method="pbkdf2:sha256:1000"),
            email=None,
            full_name=None,
            now=T0,
        )
    app = create_app(env.config, factory=env.factory)
    app.config["TESTING"] = True
    auth = base64.b64encode(b"viewer:pw").decode()
    return app.test_client(), {"Authorization": f"Basic {auth}"}


def test_a_finished_log_reads_the_same_from_the_database_once_its_file_is_gone(env: Env) -> None:
    run_id = env.queue("talk", "flood")
    worker = env.worker()
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr
    path = env.log_file(run_id, "talk")
    original = path.read_bytes()
    assert "line 299: é € 𝄞" in original.decode() and len(original) > 8000
    path.unlink()  # as on the web server's host, where the task did not run

    log = env.find(run_id, "talk")
    assert (log.source, log.live) == ("database", False)
    assert inspection.log_size(log) == len(original)
    whole = inspection.read_log_chunk(log, 0, 10_000_000)
    assert whole.content.encode() == original and not whole.more
    assert whole.next_offset == len(original)
    # small pieces (cut inside characters) join into the same text, each piece whole
    for size in (7, 1000, 4096):
        assert read_in_pieces(log, size).encode() == original
    middle = inspection.read_log_chunk(log, 5001, 300)  # from anywhere, as the file reads
    assert middle.content == original[5001 : middle.next_offset].decode(errors="replace")
    assert 5001 + 297 <= middle.next_offset <= 5001 + 300 and middle.more

    client, headers = api_client(env)
    url = f"/api/v1/dags/logs/dagRuns/{run_id}/taskInstances/talk/logs/1"
    answer = client.get(url, headers=headers).get_json()
    assert answer["content"].encode() == original and answer["live"] is False
    tail = client.get(f"{url}?offset=1234", headers=headers).get_json()
    assert tail["content"].encode() == original[1234:]
    assert tail["next_offset"] == len(original)

    cli = subprocess.run(
        [sys.executable, "-m", "slipstream", "tasks", "logs", "logs", run_id, "talk"],
        env=env.environ,
        capture_output=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == original

    # past the cap: the first bytes (whole characters), then a note; the file has it all
    flood = env.log_file(run_id, "flood").read_bytes()
    assert len(flood) > CAP
    stored = inspection.read_log_chunk(env.find(run_id, "flood", env.elsewhere), 0, 10**7)
    head, note = stored.content.rsplit("[log truncated", 1)
    # (the note starts a line of its own: a line cut by the cap gets a newline first)
    shipped = head.encode().removesuffix(b"\n")
    assert flood.startswith(shipped) and CAP - 3 <= len(shipped) <= CAP
    assert note.startswith(f": only its first {CAP} bytes were copied to the database")
    assert str(env.log_file(run_id, "flood")) in note


def test_a_running_tries_log_is_readable_elsewhere_before_it_ends(env: Env) -> None:
    run_id = env.queue("wait")
    worker = env.worker()
    try:
        deadline = time.monotonic() + DEADLINE
        seen = ""
        while "first line" not in seen:
            assert time.monotonic() < deadline, "the first line never reached the database"
            assert worker.poll() is None, worker.communicate()[1]
            log = env.find(run_id, "wait", env.elsewhere)
            seen = inspection.read_log_chunk(log, 0).content
            time.sleep(0.05)
        log = env.find(run_id, "wait", env.elsewhere)  # (found before anything was shipped)
        assert log.live and log.source == "database"
        assert "second line" not in seen
        assert inspection.get_task_instance(env.factory, "logs", run_id, "wait").state == "running"
        first = inspection.read_log_chunk(log, 0)
        # `tasks logs --follow` on that other host, from now until the try ends
        follow = subprocess.Popen(
            [sys.executable, "-m", "slipstream", "tasks", "logs", "logs", run_id, "wait", "-f"],
            env={**env.environ, "SLIPSTREAM__LOGGING__BASE_LOG_FOLDER": str(env.elsewhere)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        env.marker.touch()
        _, stderr = worker.communicate(timeout=120)
    followed, errors = follow.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert follow.returncode == 0, errors

    # once the try reads as ended, its whole log is stored; a tail goes on where it was
    log = env.find(run_id, "wait", env.elsewhere)
    assert not log.live and inspection.try_is_live(env.factory, log) is False
    rest = inspection.read_log_chunk(log, first.next_offset)
    original = env.log_file(run_id, "wait").read_bytes()
    assert (first.content + rest.content).encode() == original
    assert followed == original
    assert "second line, after the marker" in rest.content
    # the file, on the worker's host, is preferred there
    assert env.find(run_id, "wait").source == "file"


def make_shipper(env: Env, **kwargs: int) -> LogShipper:
    return LogShipper(
        env.factory, enabled=True, max_bytes_per_try=kwargs.pop("cap", CAP), hostname="w1", **kwargs
    )


@dataclass(frozen=True)
class Try:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1


def stored_chunks(env: Env, run_id: str, task_id: str) -> list[tuple[int, str]]:
    with transaction(env.factory, readonly=True) as session:
        rows = session.execute(
            select(TaskLogChunk.offset, TaskLogChunk.content)
            .where(TaskLogChunk.run_id == run_id, TaskLogChunk.task_id == task_id)
            .order_by(TaskLogChunk.offset)
        ).all()
    return [(r.offset, r.content) for r in rows]


def test_characters_cut_by_chunks_and_by_writes_are_stored_whole(env: Env, tmp_path: Path) -> None:
    run_id = env.queue("talk")
    path = tmp_path / "try.log"
    text = "é€𝄞 ab\n" * 30
    data = text.encode()
    shipper = make_shipper(env, tick_bytes=11, chunk_bytes=5)
    shipper.track(Try("logs", run_id, "talk"), path)
    shipper.ship()  # no file yet: nothing to do
    with path.open("wb") as file:
        for start in range(0, len(data), 13):  # writes that stop inside characters
            file.write(data[start : start + 13])
            file.flush()
            shipper.ship()  # (11 bytes a tick: it falls behind, and catches up at the end)
    shipper.finish(Try("logs", run_id, "talk"))
    assert shipper.tracked == 0

    chunks = stored_chunks(env, run_id, "talk")
    assert "".join(c for _, c in chunks) == text
    ends = [offset + len(content.encode()) for offset, content in chunks]
    assert [offset for offset, _ in chunks] == [0, *ends[:-1]]  # contiguous
    assert all(1 <= len(c.encode()) <= 5 for _, c in chunks)
    log = inspection.find_try_log(env.factory, env.elsewhere, "logs", run_id, "talk", 1)
    assert read_in_pieces(log, 4) == text  # (4 bytes: room for any one character)


@contextmanager
def busy_database(env: Env) -> Iterator[sessionmaker[Session]]:
    """A session factory that gives up after 0.1 s of waiting, and the database kept busy
    (write-locked) meanwhile by another connection."""
    url = env.config.database_url
    if env.engine.dialect.name == "sqlite":
        engine = make_engine(
            load_config({**env.environ, "SLIPSTREAM__DATABASE__CONNECT_TIMEOUT": "0.1"})
        )
        holder = sqlite3.connect(url.removeprefix("sqlite:///"))
        holder.execute("BEGIN EXCLUSIVE")
    else:
        engine = create_engine(url, connect_args={"options": "-c lock_timeout=100"})
        holder = env.engine.raw_connection()  # type: ignore[assignment]
        holder.cursor().execute("LOCK TABLE task_log_chunk IN ACCESS EXCLUSIVE MODE")
    try:
        yield session_factory(engine)
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()


def test_shipping_survives_a_deleted_run_and_a_busy_database(env: Env, tmp_path: Path) -> None:
    gone, kept = env.queue(), env.queue()
    (tmp_path / "a.log").write_text("of a run deleted meanwhile\n")
    (tmp_path / "b.log").write_text("first\n")
    shipper = make_shipper(env)
    shipper.track(Try("logs", gone, "talk"), tmp_path / "a.log")
    shipper.track(Try("logs", kept, "talk"), tmp_path / "b.log")
    with transaction(env.factory) as session:
        session.execute(delete(DagRun).where(DagRun.run_id == gone))
    shipper.ship()  # the deleted run's chunks are refused; the other try's go in
    assert stored_chunks(env, kept, "talk") == [(0, "first\n")]
    assert shipper.tracked == 1

    # The database stays busy past the timeout as a try ends: the try is not held up, and
    # its log is stored at the next heartbeat, once the database answers again.
    (tmp_path / "c.log").write_text("third\n")
    with busy_database(env) as factory:
        busy = LogShipper(factory, enabled=True, max_bytes_per_try=CAP, hostname="w1")
        busy.track(Try("logs", kept, "flood"), tmp_path / "c.log")
        busy.finish(Try("logs", kept, "flood"))
        assert busy.tracked == 1
        busy.factory = env.factory
    assert stored_chunks(env, kept, "flood") == []
    busy.ship()
    assert busy.tracked == 0
    assert stored_chunks(env, kept, "flood") == [(0, "third\n")]
