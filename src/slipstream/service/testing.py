"""Local development runs: ``dags test`` (a whole DAG run in one process) and ``tasks test``
(one task alone, its log on the terminal, nothing recorded)."""

from __future__ import annotations

import difflib
import json
import socket
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import MultiFernet
from sqlalchemy import Engine, select

from slipstream import masking
from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.dag_processor import DagProcessor
from slipstream.dagbag import import_dag_file
from slipstream.errors import DagImportError, DagNotFound, InvalidInputError
from slipstream.sdk.context import DagRunInfo
from slipstream.sdk.dag import DAG, set_default_timezone
from slipstream.sdk.runtime import set_backend
from slipstream.states import DagRunType
from slipstream.store import runs as run_queries
from slipstream.store.db import session_factory, transaction
from slipstream.store.models import Dag as DagRow
from slipstream.store.models import ImportError_
from slipstream.store.secrets import DatabaseBackend
from slipstream.worker.dag_test import DbXComReader, LocalDagRun, RunResult, TaskProgress
from slipstream.worker.execution import TryOutcome, TryRequest, execute_task
from slipstream.worker.logging_setup import capture_output


def parse_conf(text: str | None) -> dict[str, Any]:
    """``--conf`` JSON to a dict, or one clear sentence saying what is wrong with it."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"--conf is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"--conf must be a JSON object, not {type(value).__name__}")
    return value


def parse_logical_date(text: str | None, dag: DAG) -> datetime:
    """An ISO date or datetime; naive values are in the DAG's time zone. Default: now."""
    if not text:
        return utcnow()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"logical date {text!r} is not an ISO date or datetime (e.g. 2024-01-31 or 2024-01-31T06:00:00+00:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dag.timezone)
    return value


def load_dag(config: Config, engine: Engine, dag_id: str) -> DAG:
    """Bring the DAG's record up to date, then import its file here to get the live DAG."""
    factory = session_factory(engine)
    masking.set_sensitive_words(config.sensitive_words)
    set_default_timezone(config.core.default_timezone)
    fileloc = _fileloc(factory, dag_id)
    processor = DagProcessor(config, factory)
    if fileloc is None or not Path(fileloc).is_file():
        processor.process_folder()
        fileloc = _fileloc(factory, dag_id)
    else:
        processor.process_file(Path(fileloc))
    if fileloc is None:
        raise _not_found(factory, dag_id, config)
    try:
        imported = import_dag_file(Path(fileloc))
    except DagImportError as exc:
        raise DagImportError(f"DAG {dag_id!r} cannot be loaded from {fileloc}: {exc}") from None
    for dag in imported.dags:
        if dag.dag_id == dag_id:
            return dag
    raise DagNotFound(f"DAG {dag_id!r} is no longer defined in {fileloc}")


def _fileloc(factory: Any, dag_id: str) -> str | None:
    with transaction(factory) as session:
        row = session.get(DagRow, dag_id)
        return row.fileloc if row is not None and row.is_active else None


def _not_found(factory: Any, dag_id: str, config: Config) -> DagNotFound:
    with transaction(factory) as session:
        known = list(session.scalars(select(DagRow.dag_id).where(DagRow.is_active)))
        errors = list(session.execute(select(ImportError_.filename, ImportError_.message)))
    # The DAG most likely lives in a broken file that names it: say which and why.
    for filename, reason in errors:
        if _mentions(Path(filename), dag_id):
            return DagNotFound(
                f"DAG {dag_id!r} cannot be loaded: {filename} failed to import: {reason}"
            )
    message = f"DAG {dag_id!r} not found in {config.dags_folder}"
    close = difflib.get_close_matches(dag_id, known, n=3)
    if close:
        message += f" (did you mean {', '.join(repr(c) for c in close)}?)"
    if errors:
        message += "; some DAG files failed to import: see `slipstream dags list-import-errors`"
    return DagNotFound(message)


def _mentions(path: Path, dag_id: str) -> bool:
    if path.stem == dag_id:
        return True
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return f"'{dag_id}'" in text or f'"{dag_id}"' in text


def test_dag(
    *,
    config: Config,
    engine: Engine,
    fernet: MultiFernet,
    dag: DAG,
    logical_date: datetime,
    conf: dict[str, Any],
    listener: Callable[[TaskProgress], None] | None = None,
    actor: str | None = None,
) -> RunResult:
    runner = LocalDagRun(dag=dag, config=config, engine=engine, fernet=fernet, listener=listener)
    return runner.run(logical_date=logical_date, conf=conf, actor=actor)


def test_task(
    *,
    engine: Engine,
    fernet: MultiFernet,
    dag: DAG,
    task_id: str,
    logical_date: datetime,
    conf: dict[str, Any] | None = None,
) -> TryOutcome:
    """Run one task here, its output on the terminal (secrets masked); record nothing."""
    task = dag.get_task(task_id)
    params = dag.params.resolve(conf or {})
    interval = dag.timetable.infer_manual_data_interval(run_after=logical_date)
    factory = session_factory(engine)
    with transaction(factory) as session:
        prev_success = run_queries.as_previous_run(
            run_queries.previous_successful_run(session, dag.dag_id, logical_date)
        )
    run = DagRunInfo(
        dag_id=dag.dag_id,
        run_id=f"__slipstream_tasks_test__{logical_date.isoformat()}",
        run_type=DagRunType.MANUAL.value,
        logical_date=logical_date,
        data_interval_start=interval.start,
        data_interval_end=interval.end,
        conf=conf or {},
        start_date=utcnow(),
        prev_success=prev_success,
    )
    set_backend(DatabaseBackend(factory, fernet))
    request = TryRequest(
        dag=dag,
        task=task,
        dag_run=run,
        params=params,
        try_number=1,
        max_tries=0,
        hostname=socket.gethostname(),
    )
    previous = capture_output(sys.__stdout__ or sys.stdout)
    try:
        return execute_task(request, DbXComReader(factory))
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = previous
        set_backend(None)
