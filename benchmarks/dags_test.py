"""Benchmark: the benchmark workloads run with ``slipstream dags test``.

Runs each workload REPS times in a fresh SLIPSTREAM_HOME (SQLite) and prints one JSON object:
wall time of the command (start-up, parsing the file, the run), the run's own duration
(first task start to last task end) with its throughput, and the dependency gap — from the end of a task's last upstream
task to its own start, as recorded in the metadata database — median and p95.

    .venv/bin/python benchmarks/dags_test.py [--reps 3] [--workloads chain_20,fanout_100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, select

from slipstream.store.models import DagRun, TaskInstance

HERE = Path(__file__).parent
WORKLOADS = ["chain_20", "bash_chain_10", "fanout_100", "diamond_mix"]


def _measure(db: Path, dag_id: str, upstream: dict[str, list[str]]) -> tuple[float, list[float]]:
    """The run's own duration (first task start to last task end) and its dependency gaps."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        run_id = conn.scalar(
            select(DagRun.run_id).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc())
        )
        rows = conn.execute(
            select(TaskInstance.task_id, TaskInstance.start_date, TaskInstance.end_date).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        ).all()
    engine.dispose()
    start = {r.task_id: r.start_date for r in rows}
    end = {r.task_id: r.end_date for r in rows}
    gaps = [
        (start[t] - max(end[u] for u in ups)).total_seconds() for t, ups in upstream.items() if ups
    ]
    return (max(end.values()) - min(start.values())).total_seconds(), gaps


def _upstream(env: dict[str, str], dag_id: str) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-m", "slipstream", "tasks", "list", dag_id, "-o", "json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        row["task_id"]: [u for u in row["upstream"].split(", ") if u] for row in json.loads(out)
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SLIPSTREAM_HOME": tmp,
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(HERE / "workloads"),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
        }
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "slipstream", "db", "migrate"],
            env=env,
            check=True,
            capture_output=True,
        )
        migrate_s = time.perf_counter() - t0
        for name in args.workloads.split(","):
            upstream = _upstream(env, name)
            walls: list[float] = []
            runs: list[float] = []
            gaps: list[float] = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "slipstream", "dags", "test", name],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                walls.append(time.perf_counter() - t0)
                run_s, run_gaps = _measure(Path(tmp) / "slipstream.db", name, upstream)
                runs.append(run_s)
                gaps += run_gaps
            results[name] = {
                "tasks": len(upstream),
                "wall_s_median": round(statistics.median(walls), 3),
                "wall_s_min": round(min(walls), 3),
                "run_s_median": round(statistics.median(runs), 3),
                "tasks_per_s": round(len(upstream) / statistics.median(runs), 1),
                "dep_gap_ms_median": round(statistics.median(gaps) * 1000, 2),
                "dep_gap_ms_p95": round(_pct(gaps, 0.95) * 1000, 2),
                "reps": args.reps,
            }
    print(json.dumps({"db_migrate_s": round(migrate_s, 3), "workloads": results}, indent=2))


if __name__ == "__main__":
    main()
