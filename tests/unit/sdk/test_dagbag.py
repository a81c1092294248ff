"""Importing DAG files: collecting DAGs, clear import errors, finding files."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipstream.dagbag import find_dag_files, import_dag_file, iter_dags
from slipstream.errors import DagImportError
from slipstream.sdk.dag import DagContext

HEADER = "from slipstream import DAG, dag, task\nfrom slipstream.operators import EmptyOperator\n"


def _write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + body)
    return path


def test_module_level_dags_are_collected(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "two.py",
        "with DAG('first') as d1:\n"
        "    EmptyOperator(task_id='a')\n"
        "second = DAG('second')\n"
        "alias = second\n"
        "@dag\n"
        "def third():\n"
        "    EmptyOperator(task_id='t')\n"
        "third_dag = third()\n"
        "def not_called():\n"
        "    return DAG('never')\n",
    )
    imported = import_dag_file(path)
    assert sorted(d.dag_id for d in imported.dags) == ["first", "second", "third"]
    assert all(d.fileloc == str(path.resolve()) for d in imported.dags)
    assert imported.path == path.resolve()


def test_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "broken.py", "with DAG('x') as d:\n    EmptyOperator(task_id='a'\n")
    with pytest.raises(DagImportError) as info:
        import_dag_file(path)
    message = str(info.value)
    assert "syntax error" in message
    assert "broken.py" in message
    assert "line" in message


def test_exception_at_import(tmp_path: Path) -> None:
    path = _write(tmp_path / "raises.py", "raise ValueError('bad config value')\n")
    with pytest.raises(DagImportError, match="ValueError: bad config value"):
        import_dag_file(path)


def test_system_exit_at_import_is_caught(tmp_path: Path) -> None:
    path = _write(tmp_path / "exits.py", "import sys\nsys.exit(3)\n")
    with pytest.raises(DagImportError, match="SystemExit"):
        import_dag_file(path)


def test_cycle_at_import(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "cycle.py",
        "with DAG('cyc') as d:\n"
        "    a = EmptyOperator(task_id='a')\n"
        "    b = EmptyOperator(task_id='b')\n"
        "    a >> b >> a\n",
    )
    with pytest.raises(DagImportError, match="b -> a -> b"):
        import_dag_file(path)


def test_duplicate_task_id_at_import(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "dup.py",
        "with DAG('dup') as d:\n"
        "    EmptyOperator(task_id='same')\n"
        "    EmptyOperator(task_id='same')\n",
    )
    with pytest.raises(DagImportError, match="'same'"):
        import_dag_file(path)


def test_unknown_operator_argument_at_import(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "badarg.py",
        "with DAG('x') as d:\n    EmptyOperator(task_id='a', retires=2)\n",
    )
    with pytest.raises(DagImportError, match="retires"):
        import_dag_file(path)


def test_unclosed_dag_context_does_not_leak(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "leak.py", "d = DAG('leaky')\nd.__enter__()\nraise RuntimeError('x')\n"
    )
    with pytest.raises(DagImportError):
        import_dag_file(path)
    assert DagContext.current() is None


def test_helper_module_beside_the_dag_file_is_importable(tmp_path: Path) -> None:
    (tmp_path / "helpers_for_dag_x.py").write_text("TASK_ID = 'from_helper'\n")
    path = _write(
        tmp_path / "uses_helper.py",
        "from helpers_for_dag_x import TASK_ID\n"
        "with DAG('h') as d:\n"
        "    EmptyOperator(task_id=TASK_ID)\n",
    )
    (imported,) = import_dag_file(path).dags
    assert imported.task_ids == ["from_helper"]


def test_iter_dags_yields_errors_and_results(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.py", "d = DAG('good')\n")
    bad = _write(tmp_path / "bad.py", "1/0\n")
    results = dict(iter_dags([good, bad]))
    assert [d.dag_id for d in results[good].dags] == ["good"]  # type: ignore[union-attr]
    assert isinstance(results[bad], DagImportError)
    assert "ZeroDivisionError" in str(results[bad])


def test_find_dag_files_safe_mode_and_ignore(tmp_path: Path) -> None:
    _write(tmp_path / "a_dag.py", "d = DAG('a')\n")
    (tmp_path / "airflow_style.py").write_text("from airflow import DAG\n")
    (tmp_path / "plain_helper.py").write_text("X = 1\n")
    (tmp_path / "notes.txt").write_text("slipstream")
    _write(tmp_path / "sub" / "nested_dag.py", "d = DAG('n')\n")
    _write(tmp_path / "sub" / "skip_me.py", "d = DAG('s')\n")
    _write(tmp_path / "ignored_one.py", "d = DAG('i')\n")
    _write(tmp_path / ".hidden" / "h.py", "d = DAG('h')\n")
    (tmp_path / ".slipstreamignore").write_text("# comment\n\nignored_*.py\nsub/skip_me.py\n")
    found = [p.relative_to(tmp_path).as_posix() for p in find_dag_files(tmp_path)]
    assert found == ["a_dag.py", "airflow_style.py", "sub/nested_dag.py"]
    unsafe = [p.relative_to(tmp_path).as_posix() for p in find_dag_files(tmp_path, safe_mode=False)]
    assert "plain_helper.py" in unsafe
    assert "ignored_one.py" not in unsafe


@pytest.mark.parametrize("pattern", ["vendored", "vendored/"])
def test_ignore_pattern_naming_a_directory_skips_it(tmp_path: Path, pattern: str) -> None:
    # As in Airflow: a pattern matching a directory skips everything under it.
    _write(tmp_path / "vendored" / "lib" / "dag_in_lib.py", "d = DAG('v')\n")
    _write(tmp_path / "vendored" / "top.py", "d = DAG('t')\n")
    _write(tmp_path / "keep.py", "d = DAG('k')\n")
    (tmp_path / ".slipstreamignore").write_text(pattern + "\n")
    found = [p.relative_to(tmp_path).as_posix() for p in find_dag_files(tmp_path)]
    assert found == ["keep.py"]


def test_find_dag_files_in_missing_folder(tmp_path: Path) -> None:
    assert find_dag_files(tmp_path / "missing") == []


def test_dags_closed_by_with_or_built_by_dag_are_registered_without_a_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "unnamed.py",
        "@dag\n"
        "def built():\n"
        "    EmptyOperator(task_id='a')\n"
        "built()\n"
        "def factory(name):\n"
        "    with DAG(name):\n"
        "        EmptyOperator(task_id='b')\n"
        "for n in ('made_1', 'made_2'):\n"
        "    factory(n)\n"
        "with DAG('not_registered', auto_register=False):\n"
        "    EmptyOperator(task_id='c')\n",
    )
    assert sorted(d.dag_id for d in import_dag_file(path).dags) == ["built", "made_1", "made_2"]
    assert DagContext.autoregistered is None


def test_the_same_dag_id_twice_in_one_file_is_an_import_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "twice.py",
        "with DAG('same'):\n    EmptyOperator(task_id='a')\n"
        "with DAG('same'):\n    EmptyOperator(task_id='b')\n",
    )
    with pytest.raises(DagImportError, match="'same' is defined more than once"):
        import_dag_file(path)
