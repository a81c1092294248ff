"""`slipstream dags backfill` driven as a user would: the real CLI in subprocesses, without
a scheduler (``--no-wait`` and ``--dry-run``; the runs stay queued)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NIGHTLY = """
from datetime import datetime
from slipstream import DAG, Param
from slipstream.operators import EmptyOperator

with DAG(
    "nightly",
    schedule="0 2 * * *",
    start_date=datetime(2024, 1, 1),
    params={"limit": Param(10, type="integer", minimum=1)},
) as dag:
    EmptyOperator(task_id="noop")
"""

MANUAL = """
from slipstream import DAG
from slipstream.operators import EmptyOperator

with DAG("by_hand", schedule=None) as dag:
    EmptyOperator(task_id="noop")
"""

# The CLI as installed, with `dags backfill` in the `dags` group whether or not the
# installed entry point lists it yet.
RUNNER = """
import sys
from slipstream.cli import dags
from slipstream.cli.dags_backfill import command
from slipstream.cli.main import main

if "backfill" not in dags.group.commands:
    dags.group.add_command(command)
main(sys.argv[1:], prog_name="slipstream")
"""


@pytest.fixture
def cli(tmp_path: Path, home: Path):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "nightly.py").write_text(textwrap.dedent(NIGHTLY))
    (folder / "manual.py").write_text(textwrap.dedent(MANUAL))
    env = {
        **os.environ,
        "SLIPSTREAM_HOME": str(home),
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(folder),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", RUNNER, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run("db", "migrate").returncode == 0
    parsed = run("dags", "reserialize")
    assert parsed.returncode == 0, parsed.stderr
    return run


def backfill(cli, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("dags", "backfill", "nightly", *args)


def plan(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str, str | None]]:
    assert result.returncode == 0, result.stderr
    return [(r["logical_date"], r["action"], r["state"]) for r in json.loads(result.stdout)["runs"]]


def at(day: int) -> str:
    return f"2024-01-{day:02d}T02:00:00+00:00"


def test_dry_run_then_no_wait_then_again(cli) -> None:
    dry = backfill(cli, "-s", "2024-01-01", "-e", "2024-01-03", "--dry-run", "-o", "json")
    assert plan(dry) == [(at(1), "create", None), (at(2), "create", None)]
    assert json.loads(dry.stdout)["dry_run"] is True
    assert dry.stderr == ""  # nothing queued, so no word about the scheduler

    table = backfill(cli, "-s", "2024-01-01", "-e", "2024-01-03", "--dry-run")
    assert table.returncode == 0, table.stderr
    assert "dry run: nothing is written" in table.stdout
    assert "Would queue 2 run(s) (2 new, 0 to run again)" in table.stdout
    assert "backfill__2024-01-01T02:00:00+00:00" in table.stdout

    queued = backfill(
        cli, "-s", "2024-01-01", "-e", "2024-01-02T02:00", "--no-wait", "-c", '{"limit": 3}'
    )
    assert queued.returncode == 0, queued.stderr
    assert "Queued 2 run(s) (2 new, 0 to run again)" in queued.stdout
    assert "no scheduler is running: the runs wait, queued, until one starts" in queued.stderr
    assert "`slipstream scheduler`" in queued.stderr
    assert "Traceback" not in queued.stderr

    again = backfill(cli, "-s", "2024-01-01", "-e", "2024-01-04T02:00", "--no-wait", "-o", "json")
    assert plan(again) == [
        (at(1), "skip-active", "queued"),
        (at(2), "skip-active", "queued"),
        (at(3), "create", "queued"),
        (at(4), "create", "queued"),
    ]
    rows = json.loads(again.stdout)["runs"]
    assert rows[0]["run_id"] == "backfill__2024-01-01T02:00:00+00:00"
    assert rows[0]["data_interval_end"] == at(2)

    nothing = backfill(
        cli, "-s", "2024-01-01", "-e", "2024-01-04T02:00", "--reprocess-behavior", "completed"
    )
    assert nothing.returncode == 0, nothing.stderr
    # queued runs are never touched, whatever the behaviour
    assert "Nothing to do: every run in the range exists." in nothing.stdout


def test_backwards_lists_the_newest_first(cli) -> None:
    result = backfill(
        cli, "-s", "2024-01-01", "-e", "2024-01-03", "--run-backwards", "--no-wait", "-o", "json"
    )
    assert [d for d, _a, _s in plan(result)] == [at(2), at(1)]


RANGE = ("-s", "2024-01-01", "-e", "2024-01-03")
ERRORS = [
    (("nightli", *RANGE), "DAG 'nightli' does not exist; did you mean 'nightly'?"),
    (("by_hand", *RANGE), "DAG 'by_hand' has no schedule: a backfill needs one"),
    (
        ("nightly", "-s", "01/01/2024", "-e", "2024-01-03"),
        "--start-date '01/01/2024' is not an ISO date or datetime",
    ),
    (
        ("nightly", "-s", "2024-01-03", "-e", "2024-01-01"),
        "the end date 2024-01-01T00:00:00+00:00 is before the start date 2024-01-03T00:00:00+00:00",
    ),
    (
        ("nightly", "-s", "2024-01-01T03:00", "-e", "2024-01-01T04:00"),
        "DAG 'nightly' has no run between 2024-01-01T03:00:00+00:00 and "
        "2024-01-01T04:00:00+00:00 (schedule 0 2 * * *)",
    ),
    (("nightly", *RANGE, "-c", '{"limit": 0}'), "limit"),
    (("nightly", *RANGE, "-c", "[1]"), "--conf must be a JSON object"),
]


def test_errors_are_one_sentence_and_write_nothing(cli) -> None:
    for args, message in ERRORS:
        result = cli("dags", "backfill", *args)
        assert result.returncode == 1, args
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    after = backfill(cli, *RANGE, "--dry-run", "-o", "json")
    assert plan(after) == [(at(1), "create", None), (at(2), "create", None)]


def test_a_missing_option_is_a_usage_error(cli) -> None:
    result = cli("dags", "backfill", "nightly", "-s", "2024-01-01")
    assert result.returncode == 2
    assert "--end-date" in result.stderr
