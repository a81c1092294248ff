"""DAG runs through real scheduler and worker processes: trigger, schedule, pause, retry,
timeouts, pools and priorities."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

from scheduling_cluster import Cluster, overlapping
from sqlalchemy import select

from slipstream.service.runs import set_paused
from slipstream.store.db import transaction
from slipstream.store.models import DagRun, Pool, XCom

CHAIN = """
from datetime import datetime
from slipstream import DAG, task

with DAG("chain", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def first(**context):
        return context["params"].get("n", 1) + 1

    @task
    def second(value):
        return value * 10

    @task
    def third(value):
        print(f"third got {value}")
        return value

    third(second(first()))
"""


def test_trigger_runs_every_task_in_order_with_conf(cluster: Cluster) -> None:
    cluster.write_dag("chain.py", CHAIN)
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    run_id = cluster.trigger("chain", conf={"n": 4})
    assert cluster.wait_run("chain", run_id) == "success"
    tis = cluster.tis("chain", run_id)
    assert {t: ti.state for t, ti in tis.items()} == dict.fromkeys(
        ("first", "second", "third"), "success"
    )
    assert tis["first"].end_date <= tis["second"].start_date
    assert tis["second"].end_date <= tis["third"].start_date
    with transaction(cluster.factory) as session:
        xcom = session.scalar(
            select(XCom.value).where(XCom.run_id == run_id, XCom.task_id == "third")
        )
    assert json.loads(xcom) == 50
    # Each try left a log with what the task printed.
    log = cluster.config.log_folder / f"dag_id=chain/run_id={run_id}/task_id=third/attempt=1.log"
    assert "third got 50" in log.read_text()


CATCHUP = """
from datetime import datetime, timedelta, timezone
from slipstream import DAG
from slipstream.operators import BashOperator

MIDNIGHT = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
with DAG("{dag_id}", schedule="@daily", start_date=MIDNIGHT - timedelta(days=3),
         catchup={catchup}, max_active_runs={max_runs}) as dag:
    BashOperator(task_id="echo", bash_command="echo {{{{ ds }}}}")
"""


def test_schedule_with_catchup_creates_every_missed_interval(cluster: Cluster) -> None:
    cluster.write_dag("c.py", CATCHUP.format(dag_id="caught", catchup=True, max_runs=2))
    cluster.write_dag("n.py", CATCHUP.format(dag_id="latest", catchup=False, max_runs=2))
    cluster.parse()
    cluster.scheduler()
    cluster.worker()

    def finished(dag_id: str, n: int):  # type: ignore[no-untyped-def]
        def check(session):  # type: ignore[no-untyped-def]
            runs = list(session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)))
            done = [r for r in runs if r.state == "success"]
            return runs if len(done) >= n and len(done) == len(runs) else None

        return check

    caught = cluster.wait_for("three catchup runs", finished("caught", 3))
    assert len(caught) == 3
    assert all(r.run_type == "scheduled" for r in caught)
    intervals = sorted((r.data_interval_start, r.data_interval_end) for r in caught)
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert end == start  # contiguous daily intervals
    latest = cluster.wait_for("the latest run only", finished("latest", 1))
    assert len(latest) == 1


def test_paused_dag_waits_until_unpaused(cluster: Cluster) -> None:
    cluster.write_dag("chain.py", CHAIN)
    cluster.parse()
    set_paused(cluster.factory, "chain", True, now=datetime.now(UTC))
    cluster.scheduler()
    cluster.worker()
    run_id = cluster.trigger("chain")
    # Give the scheduler every chance to (wrongly) start it: it has been woken by the trigger.
    cluster.wait_for("the scheduler to have looked", lambda s: True)
    import time

    time.sleep(1.0)
    assert cluster.run_state("chain", run_id) == "queued"
    set_paused(
        cluster.factory,
        "chain",
        False,
        now=datetime.now(UTC),
        database_url=cluster.config.database_url,
    )
    assert cluster.wait_run("chain", run_id) == "success"


RETRY = """
from datetime import datetime, timedelta
from pathlib import Path
from slipstream import DAG, task

MARKER = Path({marker!r})

with DAG("flaky", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task(retries=2, retry_delay=timedelta(seconds=0.5))
    def flaky():
        count = int(MARKER.read_text()) if MARKER.exists() else 0
        MARKER.write_text(str(count + 1))
        if count < 2:
            raise RuntimeError(f"failing on purpose, attempt {{count + 1}}")
        return "ok"

    @task(retries=1, retry_delay=timedelta(seconds=0.2))
    def hopeless():
        raise RuntimeError("always fails")

    flaky()
    hopeless()
"""


def test_retries_then_success_and_exhausted_retries_fail(cluster: Cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cluster.write_dag("flaky.py", RETRY.format(marker=str(tmp_path / "count")))
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    run_id = cluster.trigger("flaky")
    assert cluster.wait_run("flaky", run_id) == "failed"  # hopeless is a leaf
    tis = cluster.tis("flaky", run_id)
    assert tis["flaky"].state == "success" and tis["flaky"].try_number == 3
    assert tis["hopeless"].state == "failed" and tis["hopeless"].try_number == 2
    history = [(h.task_id, h.try_number, h.state) for h in cluster.history("flaky", run_id)]
    assert history == [
        ("flaky", 1, "up_for_retry"),
        ("flaky", 2, "up_for_retry"),
        ("flaky", 3, "success"),
        ("hopeless", 1, "up_for_retry"),
        ("hopeless", 2, "failed"),
    ]
    flaky = [h for h in cluster.history("flaky", run_id) if h.task_id == "flaky"]
    # The retry waited for its retry_delay after the failed try ended.
    assert flaky[1].start_date - flaky[0].end_date >= timedelta(seconds=0.5)


TIMEOUTS = """
from datetime import datetime, timedelta
from slipstream import DAG
from slipstream.operators import BashOperator

with DAG("slow_task", schedule=None, start_date=datetime(2024, 1, 1)) as d1:
    BashOperator(task_id="sleepy", bash_command="sleep 60", execution_timeout=timedelta(seconds=1))

with DAG("slow_run", schedule=None, start_date=datetime(2024, 1, 1),
         dagrun_timeout=timedelta(seconds=2)) as d2:
    BashOperator(task_id="long", bash_command="sleep 60") >> BashOperator(task_id="after", bash_command="true")
"""


def test_execution_timeout_and_dagrun_timeout(cluster: Cluster) -> None:
    cluster.write_dag("t.py", TIMEOUTS)
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    task_run = cluster.trigger("slow_task")
    run_run = cluster.trigger("slow_run")
    assert cluster.wait_run("slow_task", task_run) == "failed"
    sleepy = cluster.tis("slow_task", task_run)["sleepy"]
    assert sleepy.state == "failed"
    assert "timed out" in (sleepy.error or "").lower()
    assert sleepy.duration is not None and sleepy.duration < 30
    assert cluster.wait_run("slow_run", run_run) == "failed"
    tis = cluster.tis("slow_run", run_run)
    assert tis["long"].state == "failed"
    assert "dagrun_timeout" in (tis["long"].error or "")
    assert tis["after"].state == "skipped"


POOLED = """
from datetime import datetime
from slipstream import DAG
from slipstream.operators import BashOperator

with DAG("pooled", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=10) as dag:
    for i, weight in enumerate([1, 5, 3, 9, 2]):
        BashOperator(task_id=f"t{{i}}_w{{weight}}", bash_command="sleep 0.3", pool="{pool}",
                     priority_weight=weight)
"""


def test_one_slot_pool_runs_one_at_a_time_in_priority_order(cluster: Cluster) -> None:
    cluster.write_dag("p.py", POOLED.format(pool="single"))
    cluster.parse()
    with transaction(cluster.factory) as session:
        session.add(Pool(pool="single", slots=1, description="one at a time"))
    cluster.scheduler()
    cluster.worker("--concurrency", "4")
    run_id = cluster.trigger("pooled")
    assert cluster.wait_run("pooled", run_id) == "success"
    tis = cluster.tis("pooled", run_id)
    assert overlapping([(ti.start_date, ti.end_date) for ti in tis.values()]) == 1
    order = [t for t, _ in sorted(tis.items(), key=lambda item: item[1].start_date)]
    assert order == ["t3_w9", "t1_w5", "t2_w3", "t4_w2", "t0_w1"]


def test_max_active_tasks_limits_a_run(cluster: Cluster) -> None:
    cluster.write_dag(
        "p.py",
        POOLED.format(pool="default_pool").replace("max_active_tasks=10", "max_active_tasks=2"),
    )
    cluster.parse()
    cluster.scheduler()
    cluster.worker("--concurrency", "8")
    run_id = cluster.trigger("pooled")
    assert cluster.wait_run("pooled", run_id) == "success"
    tis = cluster.tis("pooled", run_id)
    assert overlapping([(ti.start_date, ti.end_date) for ti in tis.values()]) == 2
