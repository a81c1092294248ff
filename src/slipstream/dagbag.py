"""Importing DAG files: find them, import one, collect the DAGs it defines.

Only the processes that are allowed to run user code use this: the DAG processor (in a
child process per file) and whatever runs tasks (the worker, ``dags test``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from slipstream.errors import DagImportError, SlipstreamError
from slipstream.sdk.dag import DAG, DagContext

# Files whose content does not mention either word cannot define a DAG; skipping them
# without importing is what Airflow's "safe mode" does too.
_MARKERS = (b"slipstream", b"airflow")
EXAMPLE_DAGS_FOLDER = Path(__file__).parent / "example_dags"


def find_dag_files(folder: Path, safe_mode: bool = True) -> list[Path]:
    """Every ``*.py`` file under ``folder`` that may define a DAG, sorted, honouring
    ``.slipstreamignore`` (one glob per line, relative to the folder)."""
    if not folder.is_dir():
        return []
    ignore = _ignore_patterns(folder)
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith((".", "__pycache__")) and not _ignored_dir(rel_root / d, ignore)
        )
        for name in sorted(files):
            if not name.endswith(".py") or name.startswith("."):
                continue
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if any(path.match(p) or Path(rel).match(p) for p in ignore):
                continue
            if safe_mode and not _may_define_dag(path):
                continue
            found.append(path)
    return found


def _ignored_dir(rel: Path, ignore: list[str]) -> bool:
    """A pattern naming a directory (``vendored`` or ``vendored/``) skips all under it."""
    return any(p.rstrip("/") and rel.match(p.rstrip("/")) for p in ignore)


def _ignore_patterns(folder: Path) -> list[str]:
    ignore_file = folder / ".slipstreamignore"
    if not ignore_file.is_file():
        return []
    lines = (line.strip() for line in ignore_file.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _may_define_dag(path: Path) -> bool:
    try:
        content = path.read_bytes().lower()
    except OSError:
        return True  # let the import report the problem
    return any(marker in content for marker in _MARKERS)


def module_name_for(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return f"slipstream_dag_{digest}_{path.stem}"


@dataclass
class ImportedFile:
    path: Path
    dags: list[DAG]


def import_dag_file(path: Path) -> ImportedFile:
    """Import ``path`` and return the DAGs it defines at module level.

    Raises :class:`DagImportError` with the reason (syntax error, exception at import, a
    definition error such as a cycle) and the user's part of the traceback.
    """
    path = Path(path).resolve()
    name = module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DagImportError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    depth = len(DagContext._stack)
    registered: list[DAG] = []
    DagContext.autoregistered = registered
    # The DAG file's folder is importable, as in Airflow, for helpers that sit beside it.
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SlipstreamError as exc:
        sys.modules.pop(name, None)
        raise DagImportError(str(exc)) from exc
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise DagImportError(
            f"syntax error in {exc.filename or path} line {exc.lineno}: {exc.msg}"
        ) from exc
    except BaseException as exc:  # user code may raise anything, SystemExit included
        sys.modules.pop(name, None)
        raise DagImportError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        del DagContext._stack[depth:]  # a file that forgot to close a `with DAG` block
        DagContext.autoregistered = None
        if added:
            sys.path.remove(folder)
    try:
        dags = _collect([*vars(module).values(), *registered], path)
    except SlipstreamError as exc:
        raise DagImportError(str(exc)) from exc
    for dag in dags:
        try:
            dag.validate()
        except SlipstreamError as exc:
            raise DagImportError(str(exc)) from exc
    return ImportedFile(path=path, dags=dags)


def _collect(candidates: list[object], path: Path) -> list[DAG]:
    """The DAGs among module-level values and auto-registered DAGs, each once."""
    seen: dict[str, DAG] = {}
    for value in candidates:
        if not isinstance(value, DAG):
            continue
        other = seen.get(value.dag_id)
        if other is not None and other is not value:
            raise DagImportError(f"DAG id {value.dag_id!r} is defined more than once in {path}")
        value.fileloc = str(path)
        seen[value.dag_id] = value
    return list(seen.values())


def user_traceback(exc: BaseException) -> str:
    """The traceback of an import failure, cut to the frames of the user's file."""
    cause = exc.__cause__ or exc
    frames = traceback.format_exception(cause)
    lines = [f for f in frames if "/slipstream/" not in f or "example_dags" in f]
    return "".join(lines).strip()


def iter_dags(paths: list[Path]) -> Iterator[tuple[Path, ImportedFile | DagImportError]]:
    for path in paths:
        try:
            yield path, import_dag_file(path)
        except DagImportError as exc:
            yield path, exc
