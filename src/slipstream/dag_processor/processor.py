"""The DAG processor: find DAG files, parse them in children, store what they define.

Storing happens in the parent, one transaction per file, so a file's DAGs, their versions
and its import error always change together. Decisions about which file owns a DAG id are
made from the whole pass's results before anything is written, so the outcome does not
depend on which child happened to finish first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.dag_processor.parsing import ParseOutcome, parse_files
from slipstream.dagbag import EXAMPLE_DAGS_FOLDER, find_dag_files
from slipstream.serialization import SerializedDag, dag_hash
from slipstream.store import dags as dag_store
from slipstream.store import import_errors
from slipstream.store.db import transaction
from slipstream.store.models import Dag
from slipstream.timetables import TimeRestriction, next_run_infos

#: The parts of a serialized DAG that decide when its runs happen.
_SCHEDULE_KEYS = ("timetable", "start_date", "end_date", "catchup")


@dataclass(frozen=True)
class FileResult:
    """What processing one file gave: the DAG ids stored, or the error recorded for it."""

    path: Path
    dag_ids: list[str]
    error: str | None
    duration: float
    stacktrace: str | None = None
    #: ids the file defines but another file holds, so they were not stored from this one
    duplicates: tuple[str, ...] = ()


Progress = Callable[[Path, int, int], None]
"""Called as each file finishes parsing: its path, files parsed so far, files in all."""


class DagProcessor:
    """Parses the DAG folder (and the examples, if enabled) into the metadata database."""

    def __init__(
        self,
        config: Config,
        session_factory: sessionmaker[Session],
        *,
        parallelism: int = 2,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.session_factory = session_factory
        self.parallelism = parallelism
        self.clock = clock

    def dag_files(self) -> list[Path]:
        files = find_dag_files(self.config.dags_folder)
        if self.config.core.load_examples:
            files += find_dag_files(EXAMPLE_DAGS_FOLDER)
        return sorted({p.resolve() for p in files})

    def process_folder(self, progress: Progress | None = None) -> list[FileResult]:
        """Parse every DAG file, store the results, and retire DAGs whose file is gone."""
        files = self.dag_files()
        # First, so a DAG moved from a deleted file to another is free to be claimed.
        self.retire_missing(files)
        return self._process(files, progress)

    def retire_missing(self, files: Collection[Path]) -> list[str]:
        """Deactivate the DAGs, and forget the import errors, of files not in ``files``.

        Returns the ids of the DAGs it deactivated.
        """
        known = {str(p) for p in files}
        with transaction(self.session_factory) as session:
            retired = dag_store.deactivate_files_not_in(session, known)
            import_errors.clear_all_except(session, known)
            dag_store.delete_code_except(session, known)
        return retired

    def process_files(
        self, files: Sequence[Path], progress: Progress | None = None
    ) -> list[FileResult]:
        """Parse and store these files only; files not listed keep what they stored."""
        return self._process([Path(p).resolve() for p in files], progress)

    def process_file(self, path: Path) -> FileResult:
        """Parse and store one file (its DAGs and its import error, nothing else)."""
        return self.process_files([path])[0]

    def _process(self, files: Sequence[Path], progress: Progress | None) -> list[FileResult]:
        done: list[Path] = []

        def on_done(outcome: ParseOutcome) -> None:
            done.append(outcome.path)
            if progress is not None:
                progress(outcome.path, len(done), len(files))

        outcomes = parse_files(
            files,
            timeout=self.config.core.dag_file_processor_timeout,
            default_timezone=self.config.core.default_timezone,
            log_file=self.config.log_folder / "dag_processor.log",
            parallelism=self.parallelism,
            on_done=on_done,
        )
        owners = self._claims(outcomes)
        return [self._store(outcome, owners) for outcome in outcomes]

    def _claims(self, outcomes: Sequence[ParseOutcome]) -> dict[str, str]:
        """dag_id -> the file allowed to define it in this pass.

        The file that holds an id in the database keeps it while it still defines it (or
        fails to import, since its DAGs are kept then); otherwise the first file in sorted
        order that defines it takes it. Every other file defining it gets an import error.
        """
        defined_by: dict[str, list[str]] = {}
        parsed: dict[str, ParseOutcome] = {}
        for outcome in outcomes:
            parsed[str(outcome.path)] = outcome
            for data in outcome.dags:
                defined_by.setdefault(data["dag_id"], []).append(str(outcome.path))
        with transaction(self.session_factory) as session:
            current = dag_store.active_owners(session, list(defined_by))
        claims: dict[str, str] = {}
        for dag_id, paths in defined_by.items():
            owner = current.get(dag_id)
            if owner is not None and _still_defines(owner, dag_id, parsed):
                claims[dag_id] = owner
            else:
                claims[dag_id] = sorted(paths)[0]
        return claims

    def _store(self, outcome: ParseOutcome, claims: Mapping[str, str]) -> FileResult:
        path = str(outcome.path)
        now = self.clock()
        with transaction(self.session_factory) as session:
            if outcome.error is not None:
                # Airflow keeps the DAGs of a file that stopped importing: their last good
                # version goes on running until the file is fixed or deleted.
                import_errors.upsert(session, path, outcome.error, outcome.stacktrace, now)
                return FileResult(
                    outcome.path, [], outcome.error, outcome.duration, outcome.stacktrace
                )
            stored: list[str] = []
            duplicates: list[str] = []
            messages: list[str] = []
            for data in outcome.dags:
                owner = claims.get(data["dag_id"], path)
                if owner != path:
                    duplicates.append(data["dag_id"])
                    messages.append(
                        f"DAG {data['dag_id']!r} is already defined in {owner}, "
                        f"so its definition in {path} is ignored"
                    )
                    continue
                self._store_dag(session, data, now)
                stored.append(data["dag_id"])
            dag_store.deactivate_missing_in_file(session, path, keep=stored)
            # The file's text, for the UI's code view: kept while the file defines DAGs here.
            if stored and outcome.source is not None:
                dag_store.put_code(session, path, outcome.source, now)
            else:
                dag_store.delete_code(session, path)
            if messages:
                error = "; ".join(messages)
                import_errors.upsert(session, path, error, None, now)
                return FileResult(
                    outcome.path, stored, error, outcome.duration, duplicates=tuple(duplicates)
                )
            import_errors.clear(session, path)
        return FileResult(outcome.path, stored, None, outcome.duration)

    def _store_dag(self, session: Session, data: Mapping[str, Any], now: datetime) -> None:
        dag, created = dag_store.upsert(  # a write first: see upsert()
            session,
            data,
            now,
            paused_by_default=self.config.scheduler.dags_are_paused_at_creation,
        )
        previous = dag_store.get_serialized(session, data["dag_id"])
        dag_store.record_version(session, dag, data, dag_hash(data), now)
        schedule_changed = previous is None or any(
            previous.get(k) != data.get(k) for k in _SCHEDULE_KEYS
        )
        if created or schedule_changed:
            self._set_next_dagrun(session, dag, data, now)

    def _set_next_dagrun(
        self, session: Session, dag: Dag, data: Mapping[str, Any], now: datetime
    ) -> None:
        """The first run the scheduler would create, so `dags list` can show it at once.

        Only on a new DAG or a changed schedule: afterwards the scheduler moves it on.
        """
        serialized = SerializedDag.from_dict(data)
        timetable = serialized.timetable
        if not timetable.can_be_scheduled:
            dag_store.set_next_dagrun(dag, None)
            return
        restriction = TimeRestriction(
            serialized.start_date, serialized.end_date, serialized.catchup
        )
        last = dag_store.last_automated_interval(session, dag.dag_id)
        infos = next_run_infos(timetable, restriction, now, 1, last_automated_data_interval=last)
        dag_store.set_next_dagrun(dag, infos[0] if infos else None)


def _still_defines(owner: str, dag_id: str, parsed: Mapping[str, ParseOutcome]) -> bool:
    outcome = parsed.get(owner)
    if outcome is None:  # not parsed in this pass: trust the database while the file exists
        return Path(owner).is_file()
    if outcome.error is not None:
        return True  # a failing file keeps its DAGs
    return any(d["dag_id"] == dag_id for d in outcome.dags)
