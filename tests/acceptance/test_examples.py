"""Every example DAG shipped with slipstream runs green under `dags test`, dated now — the
way `make run` runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from slipstream.dagbag import EXAMPLE_DAGS_FOLDER


def test_every_example_dag_succeeds(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SLIPSTREAM_HOME": str(tmp_path / "home"),
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "true",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    cli("db", "migrate")
    listed = json.loads(cli("dags", "list", "-o", "json").stdout)
    dag_ids = sorted(row["dag_id"] for row in listed)
    example_files = sorted(EXAMPLE_DAGS_FOLDER.glob("example_*.py"))
    assert len(dag_ids) == len(example_files) >= 7, dag_ids
    assert json.loads(cli("dags", "list-import-errors", "-o", "json").stdout) == []
    for dag_id in dag_ids:
        result = cli("dags", "test", dag_id)
        assert f"of {dag_id} succeeded" in result.stdout
