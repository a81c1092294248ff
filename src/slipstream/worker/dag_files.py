"""DAG files the worker keeps imported, so each try's child starts with its DAG in memory.

A try's child imports the DAG file itself the first time: a file that hangs, crashes or
exits at import then fails that try, never the worker. Once a child got through the import
of a file as it is now (same modification time and size), the worker imports it too, under
a timeout, and every later child inherits it through the fork instead of importing it
again — for a DAG of a hundred tasks that is most of a no-op task's cost. A file that
changes goes back to being imported in children until one of them proves it again.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType

from slipstream.dagbag import ImportedFile, import_dag_file
from slipstream.errors import DagImportError

log = logging.getLogger(__name__)

Stamp = tuple[int, int]


def stamp_of(path: Path) -> Stamp | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


class _ImportTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _ImportTimeout


class DagFileCache:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._proven: dict[Path, Stamp] = {}
        self._imported: dict[Path, tuple[Stamp, ImportedFile]] = {}
        self._failed: set[tuple[Path, Stamp]] = set()

    def prove(self, path: Path, stamp: Stamp | None) -> None:
        """A child imported ``path`` as of ``stamp`` without trouble."""
        if stamp is not None:
            self._proven[path] = stamp

    def get(self, path: Path, stamp: Stamp | None) -> ImportedFile | None:
        """The file imported here, if a child proved this version of it; else None (the
        child imports it)."""
        if stamp is None or self._proven.get(path) != stamp:
            return None
        cached = self._imported.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if (path, stamp) in self._failed:
            return None
        imported = self._import(path)
        if imported is None:
            self._failed.add((path, stamp))
            return None
        for dag in imported.dags:
            dag.get_template_env()  # built once here rather than in every child
        self._imported[path] = (stamp, imported)
        return imported

    def _import(self, path: Path) -> ImportedFile | None:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            return import_dag_file(path)
        except (DagImportError, _ImportTimeout) as exc:
            # Children go on importing it: the try's log will say what is wrong.
            log.warning("worker: keeping %s out of the worker (%s)", path, exc or "timed out")
            return None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
