"""Benchmark: how long the web UI and the REST API take to answer with 1,000 DAGs and
10,000 runs.

What it does, from nothing:

1. a fresh temporary SLIPSTREAM_HOME with a new SQLite database (or, with ``--db``, a new
   PostgreSQL database created through that server URL and dropped at the end);
2. seeds it: one generated DAG file of 10 tasks (two TaskGroups, Bash, Python and Empty
   operators) imported and serialized once, then stored under DAGS dag ids with the store's
   own tables (``dag``, ``dag_version``, ``dag_code``), and RUNS runs with one task instance
   per task, bulk-inserted. The first DAG gets a tenth of the runs (the grid's subject), the
   others share the rest; the newest run of each DAG is running, the rest ended;
3. builds the app with ``slipstream.web.create_app`` on that database, in process, makes an
   Admin user with ``service.users.create_user`` and logs in through the login form;
4. times each request with the Flask test client (server time: routing, auth, the queries,
   rendering; no network), REQUESTS times after WARMUP untimed ones, and the service
   functions the pages call, directly.

It prints one JSON object on stdout and a short table on stderr: median and p95 (linear
interpolation) in milliseconds, the SQL statements one request ran, the HTTP status (a page
not built yet answers 404: reported, not timed as a success) and whether the median is under
the 300 ms target.

    .venv/bin/python benchmarks/web.py
    .venv/bin/python benchmarks/web.py --db postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    .venv/bin/python benchmarks/web.py --dags 200 --runs 2000 --requests 10 --out web.json
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import hashlib
import json
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, select, text, update
from sqlalchemy.engine import make_url

from slipstream.config import load_config
from slipstream.dagbag import import_dag_file
from slipstream.roles import Role
from slipstream.serialization import SerializedDag, dag_hash, serialize_dag
from slipstream.service import dags as dag_service
from slipstream.service import overview
from slipstream.service.users import create_user
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import Dag, DagCode, DagRun, DagVersion, TaskInstance
from slipstream.store.schema import migrate

TARGET_MS = 300.0
PASSWORD = "bench-password-1"
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

DAG_SOURCE = '''\
"""A generated DAG: the shape of a typical daily pipeline."""
from datetime import datetime, timedelta

from slipstream import DAG, TaskGroup
from slipstream.operators import BashOperator, EmptyOperator, PythonOperator


def _fetch(source, **context):
    return {{"source": source, "rows": 100}}


with DAG(
    "{dag_id}",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    description="Loads the shop's data and reports on it",
    tags=["shop", "{tag}"],
    default_args={{"retries": 2, "retry_delay": timedelta(minutes=5)}},
):
    start = EmptyOperator(task_id="start")
    with TaskGroup("extract", tooltip="one task per source") as extract:
        for source in ("orders", "customers", "products"):
            PythonOperator(task_id=source, python_callable=_fetch, op_args=[source])
    with TaskGroup("transform") as transform:
        clean = BashOperator(task_id="clean", bash_command="echo cleaning {{{{ ds }}}}")
        join = BashOperator(task_id="join", bash_command="echo joining {{{{ ds }}}}")
        clean >> join
    load = BashOperator(task_id="load", bash_command="echo loading {{{{ ds }}}}", pool="db")
    report = BashOperator(task_id="report", bash_command="echo report {{{{ ds }}}}")
    notify = BashOperator(task_id="notify", bash_command="echo done", retries=0)
    end = EmptyOperator(task_id="end", trigger_rule="all_done")
    start >> extract >> transform >> load >> [report, end]
    report >> notify
'''


def log(*parts: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def pct(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in 0..100 (numpy's default method)."""
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# ----------------------------------------------------------------------------- the database


def create_postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new database on the server of ``server_url``; returns its URL and how to drop it."""
    name = f"slipstream_web_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def template_dag(folder: Path) -> tuple[dict[str, Any], str]:
    """The serialized form and source of one generated DAG file, imported for real."""
    path = folder / "bench_template.py"
    path.write_text(DAG_SOURCE.format(dag_id="bench_template", tag="template"))
    (dag,) = import_dag_file(path).dags
    return serialize_dag(dag), str(path)


def _chunks(rows: list[dict[str, Any]], size: int = 5000) -> Iterable[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _ti_state(run_state: str, position: int, load_at: int) -> str:
    """A task's state in a run, by its place in dependency order: a failed run failed at
    "load"; the running run is at "load" now."""
    if run_state == "success":
        return "success"
    if position < load_at:
        return "success"
    if position == load_at:
        return "failed" if run_state == "failed" else "running"
    return "upstream_failed" if run_state == "failed" else "none"


def seed(engine: Engine, folder: Path, n_dags: int, n_runs: int) -> dict[str, Any]:
    """Store ``n_dags`` DAGs and ``n_runs`` runs with their task instances; returns counts."""
    template, _ = template_dag(folder)
    task_ids = SerializedDag.from_dict(template).topological_order()
    load_at = task_ids.index("load")
    operators = {t["task_id"]: t["operator"] for t in template["tasks"]}
    dag_ids = [f"bench_{i:04d}" for i in range(n_dags)]
    now = dt.datetime.now(dt.UTC)
    dags, versions, codes = [], [], []
    for i, dag_id in enumerate(dag_ids):
        fileloc = str(folder / f"{dag_id}.py")
        data = copy.deepcopy(template)
        data["dag_id"], data["fileloc"] = dag_id, fileloc
        data["tags"] = sorted(["shop", f"team{i % 10}"])
        dags.append(
            {
                "dag_id": dag_id,
                "fileloc": fileloc,
                "is_paused": i % 7 == 0,
                "is_active": True,
                "description": data["description"],
                "tags": data["tags"],
                "owners": data["owner"],
                "timetable_summary": data["timetable_summary"],
                "last_parsed_at": now,
            }
        )
        versions.append(
            {
                "dag_id": dag_id,
                "version_hash": dag_hash(data),
                "fileloc": fileloc,
                "data": data,
                "created_at": now,
            }
        )
        source = DAG_SOURCE.format(dag_id=dag_id, tag=f"team{i % 10}")
        digest = hashlib.sha256(source.encode()).hexdigest()
        codes.append(
            {"fileloc": fileloc, "source": source, "source_hash": digest, "updated_at": now}
        )
    # A tenth of the runs for the first DAG (the grid's subject), the rest shared out.
    big = n_runs // 10 if n_dags > 1 else n_runs
    per_dag = {dag_ids[0]: big}
    rest = n_runs - big
    for i, dag_id in enumerate(dag_ids[1:]):
        per_dag[dag_id] = rest // (n_dags - 1) + (1 if i < rest % (n_dags - 1) else 0)
    runs, tis = [], []
    for dag_id, count in per_dag.items():
        for k in range(count):
            when = T0 + dt.timedelta(days=k)
            run_id = f"scheduled__{when.isoformat()}"
            newest = k == count - 1
            state = "running" if newest else ("failed" if k % 13 == 5 else "success")
            start = when + dt.timedelta(days=1, seconds=5)
            runs.append(
                {
                    "dag_id": dag_id,
                    "run_id": run_id,
                    "run_type": "scheduled",
                    "state": state,
                    "logical_date": when,
                    "data_interval_start": when,
                    "data_interval_end": when + dt.timedelta(days=1),
                    "run_after": when + dt.timedelta(days=1),
                    "queued_at": start,
                    "start_date": start,
                    "end_date": None if newest else start + dt.timedelta(seconds=70),
                    "conf": {},
                    "triggered_by": "timetable",
                    "updated_at": start,
                }
            )
            for j, task_id in enumerate(task_ids):
                ti_state = _ti_state(state, j, load_at)
                begun = ti_state in ("success", "failed", "running")
                ended = begun and ti_state != "running"
                tis.append(
                    {
                        "dag_id": dag_id,
                        "run_id": run_id,
                        "task_id": task_id,
                        "map_index": -1,
                        "try_number": 1 if begun else 0,
                        "max_tries": 2,
                        "state": ti_state,
                        "operator": operators[task_id],
                        "pool": "default_pool",
                        "pool_slots": 1,
                        "queue": "default",
                        "priority_weight": 1,
                        "queued_at": start if begun else None,
                        "start_date": start + dt.timedelta(seconds=j * 5) if begun else None,
                        "end_date": start + dt.timedelta(seconds=j * 5 + 4) if ended else None,
                        "duration": 4.0 if ended else None,
                        "updated_at": start,
                    }
                )
    factory = session_factory(engine)
    with transaction(factory) as session:
        session.execute(insert(Dag), dags)
        session.execute(insert(DagVersion), versions)
        session.execute(insert(DagCode), codes)
        # every DAG points at its one version
        session.execute(
            update(Dag)
            .values(
                latest_version_id=select(DagVersion.id)
                .where(DagVersion.dag_id == Dag.dag_id)
                .scalar_subquery()
            )
            .execution_options(synchronize_session=False)
        )
        for chunk in _chunks(runs):
            session.execute(insert(DagRun), chunk)
        for chunk in _chunks(tis):
            session.execute(insert(TaskInstance), chunk)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return {"dags": len(dags), "runs": len(runs), "task_instances": len(tis)}


# ----------------------------------------------------------------------------- measuring


class StatementCounter:
    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        self.count += 1


def measure(
    name: str, call: Callable[[], Any], counter: StatementCounter, warmup: int, requests: int
) -> dict[str, Any]:
    status: int | None = None
    for _ in range(warmup):
        call()
    times = []
    statements = 0
    for _ in range(requests):
        before = counter.count
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
        statements = counter.count - before
        status = getattr(result, "status_code", None)
    median = statistics.median(times)
    ok = median < TARGET_MS and (status is None or status == 200)
    return {
        "name": name,
        "status": status,
        "median_ms": round(median, 2),
        "p95_ms": round(pct(times, 95) or 0.0, 2),
        "min_ms": round(min(times), 2),
        "max_ms": round(max(times), 2),
        "statements": statements,
        "n": len(times),
        "under_target": ok,
    }


def login(client: Any, username: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(
        r'name="csrf-token" content="([^"]+)"', page
    )
    if not found:
        raise SystemExit("the login page carries no CSRF token")
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": found.group(1)},
    )
    if response.status_code != 302:
        raise SystemExit(f"logging in failed with HTTP {response.status_code}")


def run_benchmark(a: argparse.Namespace, home: Path, database_url: str) -> dict[str, Any]:
    config = load_config(
        {
            "SLIPSTREAM_HOME": str(home),
            "SLIPSTREAM__DATABASE__URL": database_url,
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(home / "dags"),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
        }
    )
    config.dags_folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config)
    started = time.perf_counter()
    migrate(engine)
    log(f"seeding {a.dags} DAGs and {a.runs} runs on {engine.dialect.name}")
    counts = seed(engine, config.dags_folder, a.dags, a.runs)
    seed_s = time.perf_counter() - started
    log(f"seeded in {seed_s:.1f} s: {counts}")

    factory = session_factory(engine)
    from slipstream.web import create_app  # the web layer, as the server builds it

    app = create_app(config, factory=factory)
    create_user(factory, username="bench", role=Role.ADMIN, password=PASSWORD, now=T0)
    client = app.test_client()
    login(client, "bench")
    api = app.test_client()
    basic = {"Authorization": "Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()}
    counter = StatementCounter(engine)
    grid_dag = "bench_0000"
    page_ids = [d.dag_id for d in dag_service.find_dags(factory, limit=50).items]
    newest = overview.recent_runs(factory, [grid_dag], per_dag=1)[grid_dag][0].run_id

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("page /dags", lambda: client.get("/dags")),
        (f"page /dags/{grid_dag}/grid", lambda: client.get(f"/dags/{grid_dag}/grid")),
        ("api /api/v1/dags?limit=100", lambda: api.get("/api/v1/dags?limit=100", headers=basic)),
        (
            f"api /api/v1/dags/{grid_dag}/dagRuns?limit=100",
            lambda: api.get(f"/api/v1/dags/{grid_dag}/dagRuns?limit=100", headers=basic),
        ),
        ("service recent_runs(50 DAGs, 10 each)", lambda: overview.recent_runs(factory, page_ids)),
        (f"service grid({grid_dag}, 25 runs)", lambda: overview.grid(factory, grid_dag)),
        (
            f"service graph({grid_dag}, newest run)",
            lambda: overview.graph(factory, grid_dag, newest),
        ),
        (
            f"service gantt({grid_dag}, newest run)",
            lambda: overview.gantt(factory, grid_dag, newest),
        ),
        ("service find_dags(first 50)", lambda: dag_service.find_dags(factory, limit=50)),
    ]
    results = []
    for name, call in cases:
        result = measure(name, call, counter, a.warmup, a.requests)
        results.append(result)
        log(f"{name}: median {result['median_ms']} ms, status {result['status']}")
    engine.dispose()
    return {"seed": {**counts, "seconds": round(seed_s, 2)}, "results": results}


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'measured':55} {'status':>6} {'median':>9} {'p95':>9} {'SQL':>4}", file=sys.stderr)
    for r in results:
        status = "-" if r["status"] is None else str(r["status"])
        flag = "" if r["under_target"] else "  <-- over target or not 200"
        print(
            f"{r['name']:55} {status:>6} {r['median_ms']:>7.1f}ms {r['p95_ms']:>7.1f}ms "
            f"{r['statements']:>4}{flag}",
            file=sys.stderr,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db",
        help="a PostgreSQL server URL; a new database is created there and dropped at the end "
        "(default: SQLite in the temporary home)",
    )
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=20, help="timed calls of each")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--out", help="also write the JSON to this file")
    a = parser.parse_args()
    if a.dags < 1 or a.runs < a.dags or a.requests < 1:
        parser.error("need at least 1 DAG, at least one run per DAG and at least 1 request")
    home = Path(tempfile.mkdtemp(prefix="slipstream-web-bench-"))
    drop: Callable[[], None] | None = None
    try:
        if a.db:
            database_url, drop = create_postgres_database(a.db)
        else:
            database_url = f"sqlite:///{home / 'slipstream.db'}"
        measured = run_benchmark(a, home, database_url)
    finally:
        if drop is not None:
            drop()
        shutil.rmtree(home, ignore_errors=True)
    result = {
        "title": "slipstream web: server time per request and per service call",
        "measured_on_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "database": "postgresql" if a.db else "sqlite",
        "target_ms": TARGET_MS,
        **measured,
    }
    text_ = json.dumps(result, indent=2)
    print(text_)
    if a.out:
        Path(a.out).write_text(text_ + "\n")
    print_table(measured["results"])
    return 0 if all(r["under_target"] for r in measured["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
