"""Benchmark: the four workloads through ``slipstream standalone`` (scheduler, workers, DAG
processor), measured the way the Apache Airflow 3.3.2 baseline was measured.

What it does, from nothing:

1. a fresh temporary SLIPSTREAM_HOME with the default SQLite database (or, with ``--db``, a new
   PostgreSQL database created through that server URL and dropped at the end), DAGs read from
   ``benchmarks/workloads``, no examples, DAGs unpaused at creation; with ``--executor celery``
   the tasks go through the Celery broker ``--broker`` (a Redis database, flushed before and
   after), and standalone's workers are Celery workers;
2. times ``slipstream db migrate`` on the empty database;
3. launches ``slipstream standalone`` in its own session and times launch -> the
   "slipstream is ready" line, and launch -> all workload DAGs active and serialized in the
   ``dag`` table;
4. measures idle CPU (after a settle period) of the whole process tree and of each component,
   told apart by the ``job`` table (scheduler, worker, dag_processor rows and their pids);
5. runs every workload REPS times, one run at a time: ``slipstream dags trigger``, then polls
   ``dag_run`` every 0.1 s until the run ends, while sampling memory (RSS, PSS) and CPU of the
   tree, and of the rest of the machine (the noise on a shared machine);
6. measures idle CPU and the resident footprint again after the workloads;
7. stops standalone with SIGINT to its process group (Ctrl-C), SIGKILL after 15 s.

It prints one JSON object on stdout (shaped like the Airflow baseline's results so the two can
be compared) and a short summary table on stderr. Every per-run figure is computed from the
``dag_run`` and ``task_instance`` rows, read with SQLAlchemy Core ``text()`` queries (SQLite
opened read-only; PostgreSQL in autocommit); the dependency edges come from the serialized DAG
(``dag_version.data``). On PostgreSQL and Redis, the database server's backends serving the
benchmark's database and the Redis server are measured beside the tree, as ``services``.

    .venv/bin/python benchmarks/standalone.py --reps 3
    .venv/bin/python benchmarks/standalone.py --reps 3 --idle-window 10 --out result.json
    .venv/bin/python benchmarks/standalone.py --reps 3 \
        --db postgresql+psycopg://postgres@127.0.0.1:5432/postgres \
        --executor celery --broker redis://127.0.0.1:6379/13
    .venv/bin/python benchmarks/standalone.py --self-check   # metric code against `dags test`

Linux only (it reads /proc). Metric definitions: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import RowMapping, bindparam, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

HERE = Path(__file__).resolve().parent
WORKLOADS_DIR = HERE / "workloads"
WORKLOADS = ["chain_20", "fanout_100", "bash_chain_10", "diamond_mix"]
READY_LINE = "slipstream is ready"
TERMINAL = {"success", "failed"}
QUIET_OTHER_CORES = 0.1
COMPONENT_JOB_TYPES = ("scheduler", "worker", "dag_processor")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(*parts: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def r4(x: float | None) -> float | None:
    # 0.1 ms: slipstream's gaps are a few milliseconds
    return None if x is None else round(x, 4)


def pct(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in 0..100 (numpy's default method)."""
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# ----------------------------------------------------------------------------- /proc sampling


@dataclass(frozen=True)
class Stat:
    ppid: int
    session: int
    ticks: int  # utime + stime
    child_ticks: int  # cutime + cstime: CPU of children this process has reaped
    rss_kb: int


def read_stat(pid: int) -> Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ")"
    rest = data[data.rfind(")") + 2 :].split()
    # rest[1]=ppid [3]=session [11]=utime [12]=stime [13]=cutime [14]=cstime [21]=rss (pages)
    return Stat(
        ppid=int(rest[1]),
        session=int(rest[3]),
        ticks=int(rest[11]) + int(rest[12]),
        child_ticks=int(rest[13]) + int(rest[14]),
        rss_kb=int(rest[21]) * PAGE_KB,
    )


def proc_table() -> dict[int, Stat]:
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = read_stat(int(name))
            if s is not None:
                table[int(name)] = s
    return table


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def system_cpu() -> tuple[int, int]:
    """(busy ticks, total ticks) of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    total = sum(parts[:8])
    return total - idle, total


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


_PG_BACKEND = re.compile(r"^postgres: (?:\S+: )?(\S+) (\S+) (?:\S+\(\d+\)|\[local\])")


def pg_backend_database(pid: int) -> str | None:
    """The database a PostgreSQL client backend serves, from its process title
    (``postgres: [cluster: ]user database host(port) activity``); None for any other process
    (the postmaster's auxiliary processes: checkpointer, WAL writer, ...)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None
    m = _PG_BACKEND.match(title)
    return m.group(2) if m else None


class Services:
    """The servers slipstream uses outside its own process tree, when they run on this machine.

    - ``postgres``: the PostgreSQL server (the postmaster, its auxiliary processes and the
      backends serving the benchmark's database), without the backends of other databases on
      the same server and without the benchmark's own reading connection (counted as the
      harness's). The postmaster's reaped children (short connections that ended within a
      window, of any database) count here: approximate on a server others use too.
    - ``redis``: the Redis server process of the broker, counted whole.

    Empty on the default SQLite set-up: no figure about services is reported then.
    """

    def __init__(self) -> None:
        self.postmaster: int | None = None
        self.database: str | None = None
        self.redis_pid: int | None = None
        self.harness_pids: set[int] = set()

    def __bool__(self) -> bool:
        return self.postmaster is not None or self.redis_pid is not None

    def split(self, table: Mapping[int, Stat]) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        if self.postmaster is not None and self.postmaster in table:
            pg = {self.postmaster}
            for pid, s in table.items():
                if s.ppid == self.postmaster and pid not in self.harness_pids:
                    db = pg_backend_database(pid)
                    if db is None or db == self.database:
                        pg.add(pid)
            out["postgres"] = pg
        if self.redis_pid is not None and self.redis_pid in table:
            out["redis"] = {self.redis_pid}
        return out


class Tree:
    """The standalone process tree, split by component.

    The tree is every process in standalone's session plus every descendant of those (a
    process that calls setsid leaves the session but stays a descendant). Each process belongs
    to the nearest ancestor (itself included) that is a component: a pid from the ``job`` table,
    or the standalone parent itself, so a worker's task processes count as that worker's.
    """

    def __init__(self, root: int, services: Services | None = None) -> None:
        self.root = root
        self.components: dict[int, str] = {root: "standalone"}
        self.services = services or Services()

    def set_components(self, by_pid: Mapping[int, str]) -> None:
        self.components = {self.root: "standalone", **by_pid}

    def members(self, table: Mapping[int, Stat]) -> set[int]:
        children: dict[int, list[int]] = {}
        for pid, s in table.items():
            children.setdefault(s.ppid, []).append(pid)
        members = {pid for pid, s in table.items() if s.session == self.root}
        if self.root in table:
            members.add(self.root)
        stack = list(members)
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in members:
                    members.add(child)
                    stack.append(child)
        return members

    def split(self, table: Mapping[int, Stat]) -> dict[str, set[int]]:
        members = self.members(table)
        out: dict[str, set[int]] = {name: set() for name in self.components.values()}
        for pid in members:
            p = pid
            # walk up to the nearest component; orphans re-parented out of the tree count
            # as the standalone parent's
            while p not in self.components and p in members:
                p = table[p].ppid
            out[self.components.get(p, "standalone")].add(pid)
        return out


def _ticks(pids: Iterable[int], table: Mapping[int, Stat]) -> int:
    return sum(table[p].ticks + table[p].child_ticks for p in pids if p in table)


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class CpuWindow:
    """CPU used over a window by the standalone tree (whole and per component), by this script,
    by the CLI processes it ran (``dags trigger``), and by everything else on the machine.

    A process's CPU is its own ticks plus those of children it reaped, so task processes that
    start and end inside the window are counted in their worker's figure.
    """

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def start(self) -> CpuWindow:
        table = proc_table()
        self.t0 = time.monotonic()
        self.sys0 = system_cpu()
        self.by_component0 = {n: _ticks(p, table) for n, p in self.tree.split(table).items()}
        self.main0 = {pid: table[pid].ticks for pid in self.tree.components if pid in table}
        # per pid: a server's processes come and go (connections); one born in the window
        # counts from zero
        self.services0 = {
            pid: table[pid].ticks + table[pid].child_ticks
            for pids in self.tree.services.split(table).values()
            for pid in pids
        }
        self.harness_db0 = _ticks(self.tree.services.harness_pids, table)
        self.self0 = _self_cpu_s()
        self.children0 = _children_cpu_s()
        self.load0 = loadavg()
        return self

    def stop(self) -> dict[str, Any]:
        table = proc_table()
        elapsed = time.monotonic() - self.t0
        sys1 = system_cpu()
        by_component = {
            name: max(0, _ticks(pids, table) - self.by_component0.get(name, 0)) / CLK_TCK
            for name, pids in self.tree.split(table).items()
        }
        main = {
            name: max(0, (table[pid].ticks if pid in table else 0) - self.main0.get(pid, 0))
            / CLK_TCK
            for pid, name in self.tree.components.items()
        }
        ours = sum(by_component.values())
        services = {
            name: sum(
                max(0, table[p].ticks + table[p].child_ticks - self.services0.get(p, 0))
                for p in pids
            )
            / CLK_TCK
            for name, pids in self.tree.services.split(table).items()
        }
        harness_db = max(0, _ticks(self.tree.services.harness_pids, table) - self.harness_db0)
        harness = max(0.0, _self_cpu_s() - self.self0) + harness_db / CLK_TCK
        cli = max(0.0, _children_cpu_s() - self.children0)
        machine = (sys1[0] - self.sys0[0]) / CLK_TCK
        served = sum(services.values())
        extra: dict[str, Any] = {}
        if self.tree.services:
            extra = {
                "services_busy_cores_approx": round(served / elapsed, 3),
                "cpu_pct_services": {
                    n: round(100 * v / elapsed, 2) for n, v in sorted(services.items())
                },
            }
        return {
            "window_s": round(elapsed, 2),
            "cpu_pct_whole_tree": round(100 * ours / elapsed, 2),
            "cpu_pct_by_component_tree": {
                n: round(100 * v / elapsed, 2) for n, v in sorted(by_component.items())
            },
            "cpu_pct_main_process": {
                n: round(100 * v / elapsed, 2) for n, v in sorted(main.items())
            },
            "machine_busy_cores": round(machine / elapsed, 3),
            "slipstream_busy_cores_approx": round(ours / elapsed, 3),
            **extra,
            "trigger_cli_busy_cores": round(cli / elapsed, 3),
            "harness_busy_cores": round(harness / elapsed, 3),
            "other_busy_cores_approx": round(
                max(0.0, machine - ours - served - harness - cli) / elapsed, 3
            ),
            "ncpu": os.cpu_count(),
            "loadavg_start": self.load0,
            "loadavg_end": loadavg(),
        }


class Sampler(threading.Thread):
    """Peak summed RSS and PSS and process count of the tree, sampled every ``interval``.

    The tree is a handful of processes, so PSS (smaps_rollup) is read at every sample too:
    runs last about a second, and a 3 s PSS period would see one sample.
    """

    def __init__(self, tree: Tree, interval: float) -> None:
        super().__init__(daemon=True)
        self.tree, self.interval = tree, interval
        self.stop_event = threading.Event()
        self.peak_rss_kb = self.peak_pss_kb = self.peak_procs = self.samples = 0
        self.peak_rss_by_component: dict[str, int] = {}
        self.peak_services_rss_kb = self.peak_services_pss_kb = 0
        self.peak_services_pss_by_name: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)
        self.sample()

    def sample(self) -> None:
        table = proc_table()
        split = self.tree.split(table)
        pids = [p for ps in split.values() for p in ps]
        self.peak_rss_kb = max(self.peak_rss_kb, sum(table[p].rss_kb for p in pids))
        self.peak_pss_kb = max(self.peak_pss_kb, sum(pss_kb(p) for p in pids))
        self.peak_procs = max(self.peak_procs, len(pids))
        for name, ps in split.items():
            rss = sum(table[p].rss_kb for p in ps)
            self.peak_rss_by_component[name] = max(self.peak_rss_by_component.get(name, 0), rss)
        if self.tree.services:
            services = self.tree.services.split(table)
            pss = {name: sum(pss_kb(p) for p in ps) for name, ps in services.items()}
            rss = sum(table[p].rss_kb for ps in services.values() for p in ps)
            self.peak_services_rss_kb = max(self.peak_services_rss_kb, rss)
            self.peak_services_pss_kb = max(self.peak_services_pss_kb, sum(pss.values()))
            for name, v in pss.items():
                self.peak_services_pss_by_name[name] = max(
                    self.peak_services_pss_by_name.get(name, 0), v
                )
        self.samples += 1

    def finish(self) -> dict[str, Any]:
        self.stop_event.set()
        self.join()
        extra: dict[str, Any] = {}
        if self.tree.services:
            extra = {
                "services_peak_sum_rss_mib": round(self.peak_services_rss_kb / 1024, 1),
                "services_peak_sum_pss_mib": round(self.peak_services_pss_kb / 1024, 1),
                "services_peak_sum_pss_mib_by_name": {
                    n: round(v / 1024, 1) for n, v in sorted(self.peak_services_pss_by_name.items())
                },
            }
        return {
            "peak_sum_rss_mib": round(self.peak_rss_kb / 1024, 1),
            "peak_sum_pss_mib": round(self.peak_pss_kb / 1024, 1),
            "peak_process_count": self.peak_procs,
            "peak_sum_rss_mib_by_component": {
                n: round(v / 1024, 1) for n, v in sorted(self.peak_rss_by_component.items())
            },
            "samples": self.samples,
            **extra,
        }


def footprint(tree: Tree) -> dict[str, Any]:
    table = proc_table()
    split = tree.split(table)
    out: dict[str, Any] = {
        "process_count": sum(len(p) for p in split.values()),
        "process_count_by_component": {n: len(p) for n, p in sorted(split.items())},
        "sum_rss_mib": round(sum(table[p].rss_kb for ps in split.values() for p in ps) / 1024, 1),
        "sum_rss_mib_by_component": {
            n: round(sum(table[p].rss_kb for p in ps) / 1024, 1) for n, ps in sorted(split.items())
        },
        "sum_pss_mib_total": round(sum(pss_kb(p) for ps in split.values() for p in ps) / 1024, 1),
    }
    if tree.services:
        services = tree.services.split(table)
        out["services"] = {
            n: {
                "process_count": len(ps),
                "sum_rss_mib": round(sum(table[p].rss_kb for p in ps) / 1024, 1),
                "sum_pss_mib": round(sum(pss_kb(p) for p in ps) / 1024, 1),
            }
            for n, ps in sorted(services.items())
        }
    return out


def wait_for_quiet(
    tree: Tree, threshold: float, max_wait: float, probe: float = 3.0
) -> dict[str, Any]:
    """Wait until processes that are not ours use fewer than ``threshold`` cores for one probe
    (at most ``max_wait`` seconds): on a shared machine a neighbour's build skews a run."""
    t0 = time.monotonic()
    while True:
        window = CpuWindow(tree).start()
        time.sleep(probe)
        other = window.stop()["other_busy_cores_approx"]
        if other < threshold or time.monotonic() - t0 >= max_wait:
            return {
                "waited_s": round(time.monotonic() - t0, 1),
                "other_busy_cores_last_probe": other,
                "quiet": other < threshold,
            }


# ----------------------------------------------------------------------------- the database


class Db:
    """Read-only access to the metadata database, SQLite or PostgreSQL: SQLAlchemy Core
    ``text()`` queries on one connection kept for the benchmark's life, in autocommit, so no
    transaction (no lock, no snapshot) is held between two polls.

    SQLite is opened read-only through the standard library's sqlite3, so the benchmark cannot
    take a write lock from the scheduler; in WAL mode readers never block the writers.
    """

    def __init__(self, url: str) -> None:
        u = make_url(url)
        self.dialect = u.get_backend_name()
        if self.dialect == "sqlite":
            path = u.database

            def connect_ro() -> sqlite3.Connection:
                return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)

            engine = create_engine(
                "sqlite://", creator=connect_ro, poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
        else:
            engine = create_engine(
                u,
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",
                connect_args={"connect_timeout": 10} if self.dialect == "postgresql" else {},
            )
        self.engine = engine
        self.conn = engine.connect()

    def all(self, sql: str, **params: Any) -> list[RowMapping]:
        stmt = text(sql)
        for name, value in params.items():
            if isinstance(value, list | tuple):  # IN :name
                stmt = stmt.bindparams(bindparam(name, expanding=True))
        try:
            return list(self.conn.execute(stmt, params).mappings())
        except DBAPIError:
            self.conn.rollback()  # the statement failed: the connection is usable again
            raise

    def one(self, sql: str, **params: Any) -> RowMapping | None:
        rows = self.all(sql, **params)
        return rows[0] if rows else None

    def backend_pid(self) -> int | None:
        """The server process of this connection (PostgreSQL), to count it as the harness's."""
        if self.dialect != "postgresql":
            return None
        row = self.one("SELECT pg_backend_pid() AS pid")
        return None if row is None else int(row["pid"])

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


def parse_ts(value: str | dt.datetime | None) -> float | None:
    """A naive UTC datetime -> epoch seconds: a string as stored in SQLite, or the datetime
    the PostgreSQL driver returns."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        d = value
    else:
        d = dt.datetime.fromisoformat(str(value).replace("T", " "))
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d.timestamp()


def dags_ready(db: Db, dag_ids: list[str]) -> dict[str, dict[str, Any]] | None:
    """When every DAG is active with a serialized version: per DAG its row and its edges
    (task -> upstream task ids) from the serialized DAG. None until then."""
    try:
        rows = db.all(
            "SELECT d.dag_id, d.is_paused, d.max_active_runs, d.max_active_tasks,"
            " v.data FROM dag d JOIN dag_version v ON v.id = d.latest_version_id"
            " WHERE d.is_active AND d.dag_id IN :dag_ids",
            dag_ids=dag_ids,
        )
    except DBAPIError:  # tables not there yet, or the database is locked
        return None
    if len(rows) < len(dag_ids):
        return None
    out = {}
    for row in rows:
        # JSON: text on SQLite, already decoded by the PostgreSQL driver
        data = json.loads(row["data"]) if isinstance(row["data"], str | bytes) else row["data"]
        out[row["dag_id"]] = {
            "is_paused": bool(row["is_paused"]),
            "max_active_runs": row["max_active_runs"],
            "max_active_tasks": row["max_active_tasks"],
            "timetable": data.get("timetable"),
            "upstream": {t["task_id"]: list(t["upstream_task_ids"]) for t in data["tasks"]},
        }
    return out


def component_pids(db: Db, tree_pids: set[int]) -> dict[int, str]:
    """The running components' pids from the ``job`` table, named by job type (numbered when
    there are several of a type, e.g. worker-1, worker-2); only pids of our tree. A Celery
    worker's job is its main process; its pool processes and their tasks are descendants."""
    rows = db.all("SELECT job_type, pid FROM job WHERE state = 'running' ORDER BY id")
    rows = [r for r in rows if r["job_type"] in COMPONENT_JOB_TYPES and r["pid"] in tree_pids]
    count: dict[str, int] = {}
    for r in rows:
        count[r["job_type"]] = count.get(r["job_type"], 0) + 1
    seen: dict[str, int] = {}
    out: dict[int, str] = {}
    for r in rows:
        kind = r["job_type"]
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if count[kind] == 1 else f"{kind}-{seen[kind]}"
        # components run in one process show up under one pid: name it after all of them
        out[r["pid"]] = f"{out[r['pid']]}+{name}" if r["pid"] in out else name
    return out


def run_state(db: Db, dag_id: str, run_id: str) -> str | None:
    row = db.one(
        "SELECT state FROM dag_run WHERE dag_id = :dag_id AND run_id = :run_id",
        dag_id=dag_id,
        run_id=run_id,
    )
    return None if row is None else row["state"]


def run_metrics(
    db: Db,
    dag_id: str,
    run_id: str,
    upstream: Mapping[str, list[str]],
    client: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The README's per-run metrics, from the ``dag_run`` and ``task_instance`` rows.

    ``upstream`` maps each task to its upstream task ids. Missing timestamps (a task that never
    ran; ``queued_at``/``scheduled_at`` are not set by ``dags test``) leave a metric None.
    """
    dr = db.one(
        "SELECT state, queued_at, start_date, end_date FROM dag_run"
        " WHERE dag_id = :dag_id AND run_id = :run_id",
        dag_id=dag_id,
        run_id=run_id,
    )
    if dr is None:
        raise RuntimeError(f"no dag_run {dag_id}/{run_id}")
    rows = db.all(
        "SELECT task_id, state, try_number, start_date, end_date, duration, queued_at,"
        " scheduled_at FROM task_instance WHERE dag_id = :dag_id AND run_id = :run_id",
        dag_id=dag_id,
        run_id=run_id,
    )
    q_at, r_start, r_end = (parse_ts(dr[k]) for k in ("queued_at", "start_date", "end_date"))
    ti = {
        r["task_id"]: {
            "state": r["state"],
            "try": r["try_number"],
            "start": parse_ts(r["start_date"]),
            "end": parse_ts(r["end_date"]),
            "duration": r["duration"],
            "queued": parse_ts(r["queued_at"]),
            "scheduled": parse_ts(r["scheduled_at"]),
        }
        for r in rows
    }
    downstream: dict[str, list[str]] = {t: [] for t in upstream}
    for d, ups in upstream.items():
        for u in ups:
            downstream.setdefault(u, []).append(d)

    def gap(d: str) -> float | None:
        """Dependency gap of ``d``: its start - the latest end of its upstream tasks."""
        ends = [ti.get(u, {}).get("end") for u in upstream[d]]
        start = ti.get(d, {}).get("start")
        if start is None or None in ends:
            return None
        return float(start - max(e for e in ends if e is not None))

    def gap_parts(d: str) -> tuple[float, float, float] | None:
        """Where ``d``'s gap goes: the latest upstream end -> ``d`` scheduled (the scheduler
        saw its upstreams done) -> queued (sent to the executor) -> started (claimed by a
        worker). None when a timestamp is missing."""
        ends = [ti.get(u, {}).get("end") for u in upstream[d]]
        t = ti.get(d, {})
        if None in ends or None in (t.get("scheduled"), t.get("queued"), t.get("start")):
            return None
        end = max(e for e in ends if e is not None)
        return t["scheduled"] - end, t["queued"] - t["scheduled"], t["start"] - t["queued"]

    gaps = [g for d, ups in upstream.items() if ups and (g := gap(d)) is not None]
    parts = [p for d, ups in upstream.items() if ups and (p := gap_parts(d)) is not None]
    starts = [t["start"] for t in ti.values() if t["start"] is not None]
    ends = [t["end"] for t in ti.values() if t["end"] is not None]
    durations = [t["duration"] for t in ti.values() if t["duration"] is not None]
    q2s = [t["start"] - t["queued"] for t in ti.values() if t["start"] and t["queued"]]
    s2q = [t["queued"] - t["scheduled"] for t in ti.values() if t["queued"] and t["scheduled"]]
    # most tasks between start_date and end_date at once; at equal times an end sorts first
    events = sorted([(s, 1) for s in starts] + [(e, -1) for e in ends])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    wall = r_end - q_at if r_end is not None and q_at is not None else None
    m: dict[str, Any] = {
        "run_id": run_id,
        "state": dr["state"],
        "task_instances": len(ti),
        "tasks_success": sum(1 for t in ti.values() if t["state"] == "success"),
        "tasks_retried": sum(1 for t in ti.values() if (t["try"] or 0) > 1),
        "wall_s": r4(wall),
    }
    if client:
        m["client_wall_s"] = r4(client["done"] - client["t0"])
        m["trigger_cli_call_s"] = r4(client["trigger_done"] - client["t0"])
    m |= {
        "queued_to_run_start_s": r4(r_start - q_at) if r_start and q_at else None,
        "queued_to_first_task_start_s": r4(min(starts) - q_at) if starts and q_at else None,
        "last_task_end_to_run_end_s": r4(r_end - max(ends)) if ends and r_end else None,
        "dep_gap_s_median": r4(pct(gaps, 50)),
        "dep_gap_s_p95": r4(pct(gaps, 95)),
        "dep_gap_s_mean": r4(statistics.mean(gaps)) if gaps else None,
        "dep_gap_s_max": r4(max(gaps)) if gaps else None,
        "dep_gap_count": len(gaps),
        # medians of each part separately: they need not add up to the gap's median
        "dep_gap_parts_s_median": {
            name: r4(pct([p[i] for p in parts], 50))
            for i, name in enumerate(
                ("upstream_end_to_scheduled", "scheduled_to_queued", "queued_to_start")
            )
        }
        if parts
        else None,
        "sink_gap_s": None,
        "task_duration_s_mean": r4(statistics.mean(durations)) if durations else None,
        "task_duration_s_median": r4(pct(durations, 50)),
        "ti_queued_to_start_s_median": r4(pct(q2s, 50)),
        "ti_scheduled_to_queued_s_median": r4(pct(s2q, 50)),
        "max_concurrent_running_tasks": most,
        "throughput_tasks_per_s_whole_run": r4(len(ti) / wall) if wall else None,
        "dep_gaps_s": [r4(g) for g in gaps],
    }
    roots = [t for t, ups in upstream.items() if not ups]
    sinks = [t for t, ds in downstream.items() if not ds]
    if len(sinks) == 1 and upstream[sinks[0]]:
        m["sink_gap_s"] = r4(gap(sinks[0]))
    # the fan layer: tasks whose only upstream is the single root and only downstream the
    # single sink (fanout_100's f000..f099); its window runs from the root's end, which
    # releases the fan, to the last fan task's end
    if len(roots) == 1 and len(sinks) == 1:
        fan = [t for t, ups in upstream.items() if ups == roots and downstream[t] == sinks]
        fan_ends = [ti.get(t, {}).get("end") for t in fan]
        root_end = ti.get(roots[0], {}).get("end")
        if len(fan) >= 10 and root_end is not None and None not in fan_ends:
            window = max(e for e in fan_ends if e is not None) - root_end
            m["fan_tasks"] = len(fan)
            m["fan_window_s"] = r4(window)
            m["fan_throughput_tasks_per_s"] = r4(len(fan) / window) if window > 0 else None
    return m


SUMMARY_KEYS = [
    "wall_s",
    "client_wall_s",
    "trigger_cli_call_s",
    "queued_to_first_task_start_s",
    "dep_gap_s_median",
    "dep_gap_s_p95",
    "dep_gap_s_mean",
    "dep_gap_s_max",
    "dep_gap_parts_s_median.upstream_end_to_scheduled",
    "dep_gap_parts_s_median.scheduled_to_queued",
    "dep_gap_parts_s_median.queued_to_start",
    "sink_gap_s",
    "task_duration_s_mean",
    "task_duration_s_median",
    "ti_queued_to_start_s_median",
    "ti_scheduled_to_queued_s_median",
    "fan_throughput_tasks_per_s",
    "throughput_tasks_per_s_whole_run",
    "max_concurrent_running_tasks",
    "memory.peak_sum_rss_mib",
    "memory.peak_sum_pss_mib",
    "memory.peak_process_count",
    "memory.services_peak_sum_pss_mib",
    "cpu.slipstream_busy_cores_approx",
    "cpu.services_busy_cores_approx",
    "cpu.trigger_cli_busy_cores",
    "cpu.harness_busy_cores",
    "cpu.other_busy_cores_approx",
]


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Median / min / max / n over the repetitions of each main metric (dotted = nested)."""
    out = {}
    for key in SUMMARY_KEYS:
        values = []
        for run in runs:
            v: Any = run
            for part in key.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            if v is not None:
                values.append(v)
        if values:
            out[key] = {
                "median": r4(statistics.median(values)),
                "min": r4(min(values)),
                "max": r4(max(values)),
                "n": len(values),
            }
    return out


# ----------------------------------------------------------------------------- the servers

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def create_postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new database on the server of ``server_url``; returns its URL and how to drop it."""
    name = f"slipstream_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    log(f"created database {name}")

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
        log(f"dropped database {name}")

    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def flush_redis(broker: str) -> int:
    """Empty the broker's Redis database (its number in the URL); returns the keys it held."""
    import redis  # installed with Celery's Redis transport

    client = redis.Redis.from_url(broker)
    try:
        keys = int(client.dbsize())
        client.flushdb()
        return keys
    finally:
        client.close()


def redis_info(broker: str) -> tuple[int | None, str | None]:
    """The Redis server's pid, when it runs on this machine, and its version."""
    import redis

    client = redis.Redis.from_url(broker)
    try:
        info = client.info("server")
    finally:
        client.close()
    pid = int(info["process_id"])
    local = make_url(broker).host in LOOPBACK or broker.startswith("unix:")
    if not local or not _comm(pid).startswith("redis"):
        return None, info.get("redis_version")
    return pid, info.get("redis_version")


def postgres_info(db: Db) -> tuple[int | None, str | None]:
    """The postmaster's pid, when the server runs on this machine, and the server's version."""
    row = db.one("SHOW server_version")
    version = None if row is None else str(next(iter(row.values())))
    backend = db.backend_pid()
    host = make_url(db.engine.url).host
    if (
        backend is None
        or (host and host not in LOOPBACK)
        or not _comm(backend).startswith("postgres")
    ):
        return None, version
    stat = read_stat(backend)
    return (None if stat is None else stat.ppid), version


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


# ----------------------------------------------------------------------------- slipstream


def slipstream_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "slipstream", *args]


def bench_env(
    home: Path,
    database_url: str | None = None,
    executor: str | None = None,
    broker: str | None = None,
) -> dict[str, str]:
    """The environment of every slipstream command; None leaves slipstream's own default
    (SQLite in the home, its default executor)."""
    # nothing from the caller's own slipstream configuration leaks in
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM")}
    env |= {
        "SLIPSTREAM_HOME": str(home),
        "SLIPSTREAM__CORE__DAGS_FOLDER": str(WORKLOADS_DIR),
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
        "SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION": "false",
        # the web server runs too (Airflow's figures include its API server), on a free port
        "SLIPSTREAM__WEBSERVER__PORT": str(_free_port()),
    }
    if database_url:
        env["SLIPSTREAM__DATABASE__URL"] = database_url
    if executor:
        env["SLIPSTREAM__CORE__EXECUTOR"] = executor
    if broker:
        env["SLIPSTREAM__CELERY__BROKER_URL"] = broker
    return env


def shown(url: str) -> str:
    """A database or broker URL with its password hidden, for the JSON."""
    return make_url(url).render_as_string(hide_password=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def effective_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings that shape the figures, as slipstream resolves them (no secrets)."""
    r = subprocess.run(
        slipstream_cmd("config", "list", "-o", "json"), env=env, capture_output=True, text=True
    )
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-500:]}
    keep = (
        "core.max_active",
        "core.default_pool",
        "core.executor",
        "scheduler.",
        "worker.",
        "dag_processor.",
        "celery.",
    )
    return {
        row["key"]: row["value"]
        for row in json.loads(r.stdout)
        if row["key"].startswith(keep) or row["key"] == "database.url"
    }


class Standalone:
    """``slipstream standalone`` in its own session, its output in a file."""

    def __init__(
        self,
        home: Path,
        env: dict[str, str],
        args: list[str],
        database_url: str,
        services: Services | None = None,
    ) -> None:
        self.home, self.env, self.args = home, env, args
        self.log_path = home / "standalone.log"
        self.database_url = database_url
        self.services = services

    def start(self) -> None:
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 - open for the process's life
        # unbuffered, so the ready line reaches the file when it is printed
        env = {**self.env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            slipstream_cmd("standalone", *self.args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.tree = Tree(self.proc.pid, self.services)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-n:])

    def wait_ready(
        self, dag_ids: list[str], timeout: float
    ) -> tuple[float | None, float | None, dict[str, dict[str, Any]]]:
        """Seconds from now to the ready line and to all DAGs in the database, and the DAGs."""
        t0 = time.monotonic()
        ready_s = dags_s = None
        dags: dict[str, dict[str, Any]] | None = None
        db: Db | None = None
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                raise RuntimeError(
                    f"standalone exited with {self.proc.returncode} during startup:\n{self.tail()}"
                )
            if ready_s is None and READY_LINE in self.output():
                ready_s = time.monotonic() - t0
                log(f"ready line after {ready_s:.2f}s")
            if dags_s is None:
                db = db or Db(self.database_url)
                dags = dags_ready(db, dag_ids)
                if dags is not None:
                    dags_s = time.monotonic() - t0
                    log(f"workload DAGs in the database after {dags_s:.2f}s")
            if ready_s is not None and dags is not None:
                break
            time.sleep(0.05)
        if db is not None:
            db.close()
        if dags is None:
            raise RuntimeError(f"DAGs not in the database after {timeout}s:\n{self.tail()}")
        return ready_s, dags_s, dags

    def refresh_components(self, db: Db) -> dict[int, str]:
        found = component_pids(db, self.tree.members(proc_table()))
        self.tree.set_components(found)
        return found

    def stop(self, grace: float = 15.0) -> dict[str, Any]:
        """SIGINT to the process group (what Ctrl-C in a terminal does), then SIGKILL to
        whatever of the tree is left after ``grace`` seconds."""
        before = self.tree.members(proc_table())
        t0 = time.monotonic()
        exit_s = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(grace)
            exit_s = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            pass
        # the tree is gone when no process of it is left (children may outlive the parent)
        while time.monotonic() - t0 < grace:
            left = {p for p in before | self.tree.members(proc_table()) if read_stat(p)}
            if not left:
                break
            time.sleep(0.1)
        tree_gone_s = time.monotonic() - t0
        left = {p for p in before | self.tree.members(proc_table()) if read_stat(p)}
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.log_file.close()
        if exit_s is not None:
            outcome = "exited after SIGINT"
        else:
            outcome = f"still running {grace:g} s after SIGINT: SIGKILLed"
        return {
            "signal": "SIGINT to the process group",
            "outcome": outcome,
            "shutdown_s": r4(exit_s),
            "tree_gone_s": None if left else r4(tree_gone_s),
            "exit_code": self.proc.returncode,
            "sigkilled_pids": sorted(left),
        }


def trigger_and_wait(
    sa: Standalone, db: Db, dag_id: str, run_id: str, timeout: float
) -> dict[str, float]:
    """Trigger a run with the CLI and poll its state every 0.1 s until it ends."""
    t0 = time.time()
    r = subprocess.run(
        slipstream_cmd("dags", "trigger", dag_id, "--run-id", run_id, "-o", "json"),
        env=sa.env,
        capture_output=True,
        text=True,
    )
    trigger_done = time.time()
    if r.returncode != 0:
        raise RuntimeError(f"dags trigger {dag_id} exited {r.returncode}: {r.stderr.strip()}")
    json.loads(r.stdout)  # the CLI answers with JSON; fail loudly if it does not
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run_state(db, dag_id, run_id) in TERMINAL:
            return {"t0": t0, "trigger_done": trigger_done, "done": time.time()}
        if not sa.alive():
            raise RuntimeError(f"standalone exited during {run_id}:\n{sa.tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"{run_id} not finished after {timeout}s ({run_state(db, dag_id, run_id)})")


def idle_window(sa: Standalone, db: Db, seconds: float) -> dict[str, Any]:
    sa.refresh_components(db)
    window = CpuWindow(sa.tree).start()
    time.sleep(seconds)
    return window.stop()


# ----------------------------------------------------------------------------- reporting


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "ncpu": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "slipstream": version("slipstream"),
        "loadavg_at_start": loadavg(),
    }


def _fmt(summary: Mapping[str, Any], key: str, scale: float = 1.0, digits: int = 3) -> str:
    s = summary.get(key)
    if not s:
        return "-"
    med, lo, hi = (round(s[k] * scale, digits or None) for k in ("median", "min", "max"))
    return f"{med}" if s["n"] == 1 or lo == hi else f"{med} ({lo}-{hi})"


def print_table(result: Mapping[str, Any]) -> None:
    out = sys.stderr
    st = result.get("startup", {})
    cfg = result.get("config", {})
    print(
        f"\n{cfg.get('metadata_db')}; executor {cfg.get('executor')}; broker {cfg.get('broker')}",
        file=out,
    )
    print(
        f"\ndb migrate {st.get('db_migrate_s')} s; launch -> ready {st.get('start_to_ready_s')} s;"
        f" -> DAGs in the database {st.get('start_to_dags_ready_s')} s;"
        f" shutdown: {result.get('shutdown', {}).get('outcome')}"
        f" ({result.get('shutdown', {}).get('shutdown_s')} s)",
        file=out,
    )
    for key in ("idle_before_workloads", "idle_after_workloads"):
        if key in result:
            w = result[key]
            services = (
                f"; services (outside the tree) {w['cpu_pct_services']}"
                if "cpu_pct_services" in w
                else ""
            )
            print(
                f"{key}: {w['cpu_pct_whole_tree']}% of a core, by component"
                f" {w['cpu_pct_by_component_tree']}{services}",
                file=out,
            )
    if "resident_after_workloads" in result:
        r = result["resident_after_workloads"]
        print(
            f"resident after workloads: {r['process_count']} processes, RSS {r['sum_rss_mib']} MiB,"
            f" PSS {r['sum_pss_mib_total']} MiB"
            + (f"; services (outside the tree) {r['services']}" if "services" in r else ""),
            file=out,
        )
    cols = [
        ("wall", "wall_s", 1, 2, "s"),
        ("dep gap med", "dep_gap_s_median", 1000, 1, "ms"),
        ("dep gap p95", "dep_gap_s_p95", 1000, 1, "ms"),
        ("1st task", "queued_to_first_task_start_s", 1000, 0, "ms"),
        ("trigger cli", "trigger_cli_call_s", 1, 2, "s"),
        ("task dur mean", "task_duration_s_mean", 1000, 1, "ms"),
        ("fan tasks/s", "fan_throughput_tasks_per_s", 1, 1, ""),
        ("RSS MiB", "memory.peak_sum_rss_mib", 1, 0, ""),
        ("PSS MiB", "memory.peak_sum_pss_mib", 1, 0, ""),
        ("other cores", "cpu.other_busy_cores_approx", 1, 2, ""),
    ]
    header = ["workload", "ok", "quiet"] + [f"{c[0]}{' ' + c[4] if c[4] else ''}" for c in cols]
    rows = [header]
    for name, wl in result.get("workloads", {}).items():
        ok = sum(1 for r in wl["runs"] if r["state"] == "success")
        quiet = sum(
            1 for r in wl["runs"] if r["cpu"]["other_busy_cores_approx"] < QUIET_OTHER_CORES
        )
        rows.append(
            [name, f"{ok}/{len(wl['runs'])}", str(quiet)]
            + [_fmt(wl["summary"], key, scale, digits) for _, key, scale, digits, _ in cols]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)), file=out)


# ----------------------------------------------------------------------------- main


def run_benchmark(
    a: argparse.Namespace, home: Path, database_url: str, result: dict[str, Any]
) -> None:
    env = bench_env(home, a.db and database_url, a.executor, a.broker)
    workloads = [w for w in a.workloads.split(",") if w]
    standalone_args = []
    if a.workers:
        standalone_args += ["--workers", str(a.workers)]
    if a.concurrency:
        standalone_args += ["--concurrency", str(a.concurrency)]
    result["config"] = {
        "command": " ".join(["slipstream", "standalone", *standalone_args]),
        "metadata_db": (
            f"postgresql: a new database on {shown(a.db)}, dropped at the end"
            if a.db
            else "sqlite (slipstream.db in a fresh temporary SLIPSTREAM_HOME)"
        ),
        "executor": a.executor or "slipstream's default",
        "broker": shown(a.broker) if a.broker else None,
        "overrides": {
            k: shown(v) if k.endswith("_URL") else v
            for k, v in env.items()
            if k.startswith("SLIPSTREAM__")
        },
        "reps": a.reps,
        "idle_window_s": a.idle_window,
        "settle_s": a.settle,
        "sample_interval_s": a.sample_interval,
        "poll_interval_s": 0.1,
        "quiet_threshold_cores": a.quiet_threshold,
        "quiet_max_wait_s": a.quiet_max_wait,
        "effective": effective_config(env),
    }

    t = time.monotonic()
    subprocess.run(slipstream_cmd("db", "migrate"), env=env, check=True, capture_output=True)
    result["startup"] = {"db_migrate_s": round(time.monotonic() - t, 3)}
    log(f"db migrate {result['startup']['db_migrate_s']}s")

    services = Services()
    if a.db:
        probe = Db(database_url)
        services.postmaster, result["machine"]["postgresql"] = postgres_info(probe)
        services.database = make_url(database_url).database
        probe.close()
    if a.broker and a.broker.startswith(("redis://", "rediss://", "unix://")):
        services.redis_pid, result["machine"]["redis"] = redis_info(a.broker)
    if a.executor == "celery":
        from importlib.metadata import version

        result["machine"]["celery"] = version("celery")
    if services:
        result["config"]["services_measured"] = {
            "postgres_postmaster_pid": services.postmaster,
            "redis_server_pid": services.redis_pid,
        }

    sa = Standalone(home, env, standalone_args, database_url, services)
    sa.start()
    log(f"started slipstream standalone pid={sa.proc.pid}")
    try:
        ready_s, dags_s, dags = sa.wait_ready(workloads, a.startup_timeout)
        result["startup"] |= {"start_to_ready_s": r4(ready_s), "start_to_dags_ready_s": r4(dags_s)}
        db = Db(database_url)
        # the benchmark's own database connection: the harness's CPU, not slipstream's
        services.harness_pids = {pid} if (pid := db.backend_pid()) else set()
        components = sa.refresh_components(db)
        result["startup"]["components"] = {name: pid for pid, name in components.items()}
        log(f"components: {result['startup']['components']}")
        paused = [d for d, info in dags.items() if info["is_paused"]]
        if paused:
            log(f"warning: paused DAGs {paused}; their runs will not start")

        time.sleep(a.settle)
        result["idle_before_workloads"] = idle_window(sa, db, a.idle_window)
        result["resident_before_workloads"] = footprint(sa.tree)
        log(
            "idle before:", json.dumps(result["idle_before_workloads"]["cpu_pct_by_component_tree"])
        )

        result["workloads"] = {}
        for name in workloads:
            upstream = dags[name]["upstream"]
            runs = []
            for rep in range(1, a.reps + 1):
                quiet = (
                    wait_for_quiet(sa.tree, a.quiet_threshold, a.quiet_max_wait)
                    if a.quiet_max_wait > 0
                    else None
                )
                sa.refresh_components(db)
                run_id = f"bench-{name}-{rep}"
                sampler = Sampler(sa.tree, a.sample_interval)
                cpu = CpuWindow(sa.tree).start()
                sampler.start()
                try:
                    client = trigger_and_wait(sa, db, name, run_id, a.run_timeout)
                finally:
                    memory = sampler.finish()
                cpu_figures = cpu.stop()
                m = run_metrics(db, name, run_id, upstream, client)
                m["memory"] = memory
                m["cpu"] = {
                    k: cpu_figures[k]
                    for k in (
                        "machine_busy_cores",
                        "slipstream_busy_cores_approx",
                        "services_busy_cores_approx",
                        "cpu_pct_services",
                        "trigger_cli_busy_cores",
                        "harness_busy_cores",
                        "other_busy_cores_approx",
                        "cpu_pct_by_component_tree",
                        "loadavg_start",
                        "loadavg_end",
                    )
                    if k in cpu_figures
                }
                m["pre_run_quiet_wait"] = quiet
                runs.append(m)
                log(
                    f"{name} rep {rep}: {m['state']} wall={m['wall_s']}s"
                    f" client={m['client_wall_s']}s gap_med={m['dep_gap_s_median']}"
                    f" gap_p95={m['dep_gap_s_p95']} fan={m.get('fan_throughput_tasks_per_s')}"
                    f" rss={memory['peak_sum_rss_mib']}MiB pss={memory['peak_sum_pss_mib']}MiB"
                    f" other_cores={cpu_figures['other_busy_cores_approx']}"
                )
                if a.quiet_max_wait <= 0:
                    time.sleep(1)  # let the finished run's processes exit before the next
            result["workloads"][name] = {
                "tasks": len(upstream),
                "edges": sum(len(u) for u in upstream.values()),
                "dag": {k: v for k, v in dags[name].items() if k != "upstream"},
                "summary": summarize(runs),
                # the baseline's "quiet" view: runs during which unrelated processes used
                # under 0.1 core
                "summary_quiet": summarize(
                    [r for r in runs if r["cpu"]["other_busy_cores_approx"] < QUIET_OTHER_CORES]
                ),
                "runs": runs,
            }

        time.sleep(a.settle / 4)
        result["idle_after_workloads"] = idle_window(sa, db, a.idle_window)
        result["resident_after_workloads"] = footprint(sa.tree)
        log("idle after:", json.dumps(result["idle_after_workloads"]["cpu_pct_by_component_tree"]))
        db.close()
        result["standalone_alive_at_end"] = sa.alive()
    finally:
        log("stopping standalone (SIGINT)")
        result["shutdown"] = sa.stop()
        log(f"shutdown: {result['shutdown']}")
        if result["shutdown"]["exit_code"] != 0 or "workloads" not in result:
            result["standalone_log_tail"] = sa.tail(60)


def self_check(home: Path, database_url: str, on_postgres: bool) -> int:
    """Run the metric code on the rows ``dags test`` records and check what must hold."""
    env = bench_env(home, database_url if on_postgres else None)
    subprocess.run(slipstream_cmd("db", "migrate"), env=env, check=True, capture_output=True)
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name in ("chain_20", "fanout_100", "diamond_mix"):
        subprocess.run(
            slipstream_cmd("dags", "test", name), env=env, check=True, capture_output=True
        )
        db = Db(database_url)
        dags = dags_ready(db, [name])
        if dags is None:
            raise SystemExit(f"{name} not in the database after dags test")
        upstream = dags[name]["upstream"]
        row = db.one(
            "SELECT run_id FROM dag_run WHERE dag_id = :dag_id ORDER BY id DESC", dag_id=name
        )
        assert row is not None
        m = run_metrics(db, name, row["run_id"], upstream)
        db.close()
        edges = sum(len(u) for u in upstream.values())
        with_upstream = sum(1 for u in upstream.values() if u)
        expected = {"chain_20": (20, 19), "fanout_100": (102, 200), "diamond_mix": (33, 44)}[name]
        checks = {
            "task count and edges": (len(upstream), edges) == expected,
            "all tasks succeeded": m["tasks_success"] == m["task_instances"] == expected[0],
            "one gap per task with upstreams": m["dep_gap_count"] == with_upstream,
            "gaps are not negative": all(g >= 0 for g in m["dep_gaps_s"]),
            "wall_s set": (m["wall_s"] or 0) > 0,
            "sink gap set": m["sink_gap_s"] is not None,
            "fan throughput only for fanout_100": (m.get("fan_throughput_tasks_per_s") is not None)
            == (name == "fanout_100"),
            "chain runs one task at a time": name != "chain_20"
            or m["max_concurrent_running_tasks"] == 1,
        }
        problems += [f"{name}: {c}" for c, ok in checks.items() if not ok]
        out[name] = {k: v for k, v in m.items() if k != "dep_gaps_s"}
    print(json.dumps({"self_check": problems or "ok", "runs": out}, indent=1))
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3, help="runs of each workload")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--idle-window", type=float, default=30.0, help="seconds per idle window")
    parser.add_argument(
        "--settle", type=float, default=20.0, help="seconds after startup before the idle window"
    )
    parser.add_argument("--sample-interval", type=float, default=0.25, help="RSS/PSS sampling")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--run-timeout", type=float, default=600.0)
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.3,
        help="before each run, wait until other processes use fewer cores than this ...",
    )
    parser.add_argument(
        "--quiet-max-wait", type=float, default=60.0, help="... but at most this long (0: no wait)"
    )
    parser.add_argument("--workers", type=int, help="standalone --workers (default: its own)")
    parser.add_argument(
        "--concurrency", type=int, help="standalone --concurrency, tasks per worker"
    )
    parser.add_argument(
        "--db",
        help="a PostgreSQL server URL (postgresql+psycopg://user@host:port/postgres); a new "
        "database slipstream_bench_<random> is created there and dropped at the end "
        "(default: SQLite in the temporary home)",
    )
    parser.add_argument(
        "--executor",
        choices=["local", "celery"],
        help="core.executor (default: slipstream's own); celery needs --broker",
    )
    parser.add_argument(
        "--broker",
        help="celery.broker_url, e.g. redis://127.0.0.1:6379/13; a Redis database is flushed "
        "before and after the benchmark, so give one nothing else uses",
    )
    parser.add_argument("--out", help="also write the JSON to this file")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="with --db: keep the new database (to look at its rows; drop it yourself)",
    )
    parser.add_argument(
        "--self-check",
        action="store_true",
        help="check the metric code on `dags test` runs (no standalone) and exit",
    )
    a = parser.parse_args()
    if a.db and make_url(a.db).get_backend_name() != "postgresql":
        parser.error("--db takes a PostgreSQL server URL (SQLite is the default)")
    if a.executor == "celery" and not a.broker:
        parser.error("--executor celery needs --broker (e.g. redis://127.0.0.1:6379/13)")
    if a.broker and a.executor != "celery":
        parser.error("--broker is for --executor celery")

    home = Path(tempfile.mkdtemp(prefix="slipstream-bench-"))
    cleanup = contextlib.ExitStack()
    try:
        if a.db:
            database_url, drop = create_postgres_database(a.db)
            if a.keep_db:
                cleanup.callback(log, f"database kept: {shown(database_url)}")
            else:
                cleanup.callback(drop)
        else:
            database_url = f"sqlite:///{home / 'slipstream.db'}"
        if a.self_check:
            return self_check(home, database_url, on_postgres=bool(a.db))
        if a.broker and a.broker.startswith(("redis://", "rediss://", "unix://")):
            log(f"flushed the broker's Redis database ({flush_redis(a.broker)} keys)")
            cleanup.callback(lambda: log(f"flushed the broker ({flush_redis(a.broker)} keys)"))
        result: dict[str, Any] = {
            "title": "slipstream standalone: benchmark workloads through the scheduler and workers",
            "measured_on_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
        }
        code = 0
        try:
            run_benchmark(a, home, database_url, result)
        except Exception as exc:  # report what was measured up to the failure
            result["error"] = f"{type(exc).__name__}: {exc}"
            log(f"error: {result['error']}")
            code = 1
        result["finished_at_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        # the database is dropped and the broker emptied before the JSON is printed
        try:
            cleanup.close()
        except Exception as exc:
            result["cleanup_error"] = f"{type(exc).__name__}: {exc}"
            log(f"cleanup failed: {result['cleanup_error']}")
        out = json.dumps(result, indent=1)
        if a.out:
            Path(a.out).write_text(out + "\n")
        print(out)
        print_table(result)
        return code
    finally:
        cleanup.close()
        if a.keep_home:
            log(f"home kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
