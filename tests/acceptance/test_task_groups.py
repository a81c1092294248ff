"""A DAG with nested TaskGroups (the ``example_task_groups`` example) run by the real CLI:
``dags test`` runs every task under its prefixed id, in the order the group edges set, and
the stored serialized DAG carries the group tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from slipstream.store.models import DagVersion, TaskInstance, XCom

EXAMPLE = Path(__file__).parents[2] / "src/slipstream/example_dags/example_task_groups.py"
DAG_ID = "example_task_groups"
TASK_IDS = {
    "start",
    "extract.orders.fetch",
    "extract.orders.clean",
    "extract.refunds.fetch",
    "extract.refunds.clean",
    "report.combine",
    "report.publish.announce",
    "report.publish.archive",
}


def test_nested_groups_run_through_dags_test(tmp_path: Path) -> None:
    home, dags = tmp_path / "home", tmp_path / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE, dags / EXAMPLE.name)
    env = {
        **os.environ,
        "SLIPSTREAM_HOME": str(home),
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
    }

    def cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=60,
            check=False,
        )
        out = result.stdout + result.stderr
        assert result.returncode == 0 and "Traceback" not in out, out
        return out

    cli("db", "migrate")
    out = cli("dags", "test", DAG_ID, "2024-01-01")
    assert "succeeded" in out, out

    engine = create_engine(f"sqlite:///{home / 'slipstream.db'}")
    try:
        with Session(engine) as session:
            rows = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == DAG_ID))
            states = {r.task_id: r.state for r in rows}
            xcoms = {
                (x.task_id, x.key): json.loads(x.value)
                for x in session.scalars(select(XCom).where(XCom.dag_id == DAG_ID))
            }
            versions = list(
                session.scalars(select(DagVersion.data).where(DagVersion.dag_id == DAG_ID))
            )
    finally:
        engine.dispose()

    assert states == dict.fromkeys(TASK_IDS, "success")
    assert xcoms[("extract.orders.clean", "return_value")] == [10, 20, 30]
    # the announce task pulled the prefixed id of combine: 60 - 5
    assert xcoms[("report.publish.announce", "return_value")] == "net total: 55"
    assert versions, "dags test stored no serialized DAG"
    groups = {g["group_id"]: g for g in versions[-1]["task_groups"]}
    assert sorted(groups) == [
        "extract",
        "extract.orders",
        "extract.refunds",
        "report",
        "report.publish",
    ]
    assert groups["report.publish"]["parent_group_id"] == "report"
    assert groups["extract"]["tooltip"] == "one group per source"
