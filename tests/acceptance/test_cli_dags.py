"""`slipstream dags ...` driven as a user would: the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCHEDULED = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import EmptyOperator

with DAG("nightly", schedule="0 2 * * *", start_date=datetime(2024, 1, 1), tags=["ops"]) as dag:
    EmptyOperator(task_id="noop")
print("user code printing to stdout must not reach the CLI's output")
"""

MANUAL = """
from slipstream import DAG
from slipstream.operators import EmptyOperator

with DAG("by_hand", schedule=None) as dag:
    EmptyOperator(task_id="noop")
"""

BAD_CRON = """
from datetime import datetime
from slipstream import DAG
dag = DAG("bad_cron", schedule="not a cron", start_date=datetime(2024, 1, 1))
"""


@pytest.fixture
def cli(tmp_path: Path, home: Path):
    dags = tmp_path / "dags"
    dags.mkdir()
    for name, text in (("nightly.py", SCHEDULED), ("manual.py", MANUAL), ("bad.py", BAD_CRON)):
        (dags / name).write_text(textwrap.dedent(text))
    env = {
        **os.environ,
        "SLIPSTREAM_HOME": str(home),
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
    }

    def run(
        *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def test_dags_commands_on_a_fresh_install(cli) -> None:
    assert cli("db", "migrate").returncode == 0

    # A fresh database holds no DAGs: `dags list` parses the folder first.
    listed = cli("dags", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["dag_id"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"nightly", "by_hand"}
    assert rows["nightly"]["schedule"] == "0 2 * * *" and rows["nightly"]["tags"] == "ops"
    assert rows["nightly"]["next_run"] is not None
    assert rows["by_hand"]["next_run"] is None

    errors = cli("dags", "list-import-errors", "-o", "json")
    assert errors.returncode == 0
    [error] = json.loads(errors.stdout)
    assert error["filename"].endswith("bad.py") and "not a cron" in error["message"]

    reserialized = cli("dags", "reserialize")
    assert reserialized.returncode == 0, reserialized.stderr
    assert "Parsed 3 file(s): 2 DAG(s), 1 import error(s)." in reserialized.stdout
    assert "\x1b[" not in reserialized.stdout  # no progress bar when piped

    runs = cli("dags", "next-runs", "nightly", "-n", "3", "-o", "json")
    assert runs.returncode == 0, runs.stderr
    infos = json.loads(runs.stdout)
    assert len(infos) == 3
    assert all(i["logical_date"].endswith("02:00:00+00:00") for i in infos)
    assert infos[0]["data_interval_end"] == infos[1]["data_interval_start"]

    manual = cli("dags", "next-runs", "by_hand")
    assert manual.returncode == 0
    assert "DAG 'by_hand' has no schedule: it runs only when triggered" in manual.stdout

    unknown = cli("dags", "next-runs", "nightli")
    assert unknown.returncode != 0
    assert "'nightly'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_dags_list_needs_a_migrated_and_reachable_database(cli) -> None:
    fresh = cli("dags", "list")
    assert fresh.returncode != 0
    assert "db migrate" in fresh.stderr and "Traceback" not in fresh.stderr

    unreachable = cli(
        "dags",
        "list",
        extra_env={
            "SLIPSTREAM__DATABASE__URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
            "SLIPSTREAM__DATABASE__CONNECT_TIMEOUT": "2",
        },
    )
    assert unreachable.returncode != 0
    assert "cannot reach" in unreachable.stderr and "Traceback" not in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1
