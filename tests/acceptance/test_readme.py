"""The DAG shown in README.md runs as the README says it does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_dag_runs(tmp_path: Path) -> None:
    section = README.read_text().split("## A DAG", 1)[1]
    source = re.search(r"```python\n(.*?)```", section, re.S)
    assert source is not None
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "daily_sales.py").write_text(source.group(1))
    env = {
        **os.environ,
        "SLIPSTREAM_HOME": str(tmp_path / "home"),
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
    }
    run = [sys.executable, "-m", "slipstream"]
    subprocess.run([*run, "db", "migrate"], env=env, check=True, capture_output=True)
    result = subprocess.run(
        [*run, "dags", "test", "daily_sales", "2024-06-01", "--conf", '{"region": "us"}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    logs = tmp_path / "home" / "logs" / "dag_id=daily_sales"
    [report] = logs.glob("run_id=*/task_id=report/attempt=1.log")
    assert "19 characters" in report.read_text()  # len("sales-2024-06-01-us")
