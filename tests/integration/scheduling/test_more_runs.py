"""More DAG runs through real scheduler and worker processes: max_active_runs with catchup,
depends_on_past, branching, trigger rules on failure, clearing, and queue routing."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scheduling_cluster import Cluster, overlapping
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipstream.service.clearing import clear_tasks
from slipstream.store.models import DagRun

DAYS_BACK = """
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from slipstream import DAG, task

MIDNIGHT = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
"""

SERIAL = (
    DAYS_BACK
    + """
with DAG("serial", schedule="@daily", start_date=MIDNIGHT - timedelta(days=3), catchup=True,
         max_active_runs=1) as dag:
    @task
    def work():
        time.sleep(0.3)

    work()
"""
)


def _runs(dag_id: str, n: int) -> Callable[[Session], list[DagRun] | None]:
    """A check: the runs of ``dag_id`` once ``n`` exist and all have finished."""

    def check(session: Session) -> list[DagRun] | None:
        runs = list(
            session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id))
        )
        done = [r for r in runs if r.state in ("success", "failed")]
        return runs if len(runs) >= n and len(done) == len(runs) else None

    return check


def test_max_active_runs_one_runs_catchup_one_at_a_time_in_order(cluster: Cluster) -> None:
    cluster.write_dag("serial.py", SERIAL)
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    runs = cluster.wait_for("three catchup runs", _runs("serial", 3))
    assert len(runs) == 3 and all(r.state == "success" for r in runs)
    assert overlapping([(r.start_date, r.end_date) for r in runs]) == 1
    by_start = sorted(runs, key=lambda r: r.start_date)
    assert [r.logical_date for r in by_start] == sorted(r.logical_date for r in runs)
    tis = [cluster.tis("serial", r.run_id)["work"] for r in by_start]
    assert overlapping([(ti.start_date, ti.end_date) for ti in tis]) == 1


PAST = (
    DAYS_BACK
    + """
SECOND_DAY = (MIDNIGHT - timedelta(days=2)).strftime("%Y-%m-%d")
ALLOW = Path({allow!r})

with DAG("past", schedule="@daily", start_date=MIDNIGHT - timedelta(days=3), catchup=True,
         max_active_runs=3) as dag:
    @task(depends_on_past=True, retries=0)
    def dep(**context):
        time.sleep(0.5)
        if context["ds"] == SECOND_DAY and not ALLOW.exists():
            raise RuntimeError("the second day fails until allowed")

    @task
    def free():
        pass

    dep()
    free()
"""
)


def test_depends_on_past_waits_for_the_previous_run_and_a_clear_frees_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    allow = tmp_path / "allow"
    cluster.write_dag("past.py", PAST.format(allow=str(allow)))
    cluster.parse()
    cluster.scheduler()
    cluster.worker()

    def three_runs(session: Session) -> list[DagRun] | None:
        runs = list(
            session.scalars(
                select(DagRun).where(DagRun.dag_id == "past").order_by(DagRun.logical_date)
            )
        )
        return runs if len(runs) == 3 else None

    first, second, third = (r.run_id for r in cluster.wait_for("three runs", three_runs))
    assert cluster.wait_run("past", first) == "success"
    assert cluster.wait_run("past", second) == "failed"
    cluster.wait_ti("past", third, "free", lambda ti: ti.state == "success", "success")
    dep1, dep2 = cluster.tis("past", first)["dep"], cluster.tis("past", second)["dep"]
    # Three runs could be active at once, yet each dep waited for the one before it.
    assert dep1.end_date <= dep2.start_date
    assert dep2.state == "failed"
    # The third run's dep is held back by the failure before it, past a safety sweep.
    time.sleep(cluster.config.scheduler.sweep_interval + 0.5)
    dep3 = cluster.tis("past", third)["dep"]
    assert (dep3.state, dep3.try_number) == ("none", 0)
    assert cluster.run_state("past", third) == "running"

    # Clearing the failed dep lets it succeed, which frees the third run's.
    allow.write_text("yes")
    clear_tasks(
        cluster.factory,
        "past",
        now=datetime.now(UTC),
        task_regex="^dep$",
        run_id=second,
        database_url=cluster.config.database_url,
    )
    assert cluster.wait_run("past", second) == "success"
    assert cluster.wait_run("past", third) == "success"
    dep2, dep3 = cluster.tis("past", second)["dep"], cluster.tis("past", third)["dep"]
    assert (dep2.state, dep2.try_number) == ("success", 2)
    assert (dep3.state, dep3.try_number) == ("success", 1)
    assert dep2.end_date <= dep3.start_date


PAST_ONLY = (
    DAYS_BACK
    + """
with DAG("past_only", schedule="@daily", start_date=MIDNIGHT - timedelta(days=2), catchup=True,
         max_active_runs=2) as dag:
    @task(depends_on_past=True)
    def dep():
        time.sleep(0.5)

    dep()
"""
)


def test_depends_on_past_release_does_not_wait_for_the_safety_sweep(cluster: Cluster) -> None:
    if not cluster.config.database_url.startswith("sqlite"):
        pytest.skip("the wake-up path is the same on every database")
    # The sweep only bounds the delay of a lost wake-up; normal progress must not need it.
    cluster.env["SLIPSTREAM__SCHEDULER__SWEEP_INTERVAL"] = "120"
    cluster.write_dag("past_only.py", PAST_ONLY)
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    runs = cluster.wait_for("two runs to finish", _runs("past_only", 2), deadline=6)
    assert [r.state for r in runs] == ["success", "success"]


BRANCH = """
from datetime import datetime
from slipstream import DAG, TriggerRule, task

with DAG("branchy", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task.branch
    def choose(**context):
        return "left" if context["params"].get("go", "left") == "left" else "right"

    @task
    def left():
        return "went left"

    @task
    def right():
        return "went right"

    @task
    def after_right():
        pass

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def join():
        pass

    chosen = choose()
    l, r = left(), right()
    chosen >> [l, r]
    r >> after_right()
    [l, r] >> join()
"""


def test_branch_skips_the_path_not_taken(cluster: Cluster) -> None:
    cluster.write_dag("branchy.py", BRANCH)
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    go_left = cluster.trigger("branchy", run_id="left")
    go_right = cluster.trigger("branchy", run_id="right", conf={"go": "right"})
    assert cluster.wait_run("branchy", go_left) == "success"
    assert cluster.wait_run("branchy", go_right) == "success"
    left = {t: (ti.state, ti.try_number) for t, ti in cluster.tis("branchy", go_left).items()}
    assert left == {
        "choose": ("success", 1),
        "left": ("success", 1),
        "right": ("skipped", 0),
        "after_right": ("skipped", 0),
        "join": ("success", 1),
    }
    right = {t: ti.state for t, ti in cluster.tis("branchy", go_right).items()}
    assert right == {
        "choose": "success",
        "left": "skipped",
        "right": "success",
        "after_right": "success",
        "join": "success",
    }
    ran = {h.task_id for h in cluster.history("branchy", go_left)}
    assert ran == {"choose", "left", "join"}  # a skipped task never ran


RULES = """
from datetime import datetime
from slipstream import DAG, TriggerRule, task

with DAG("rules", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task(retries=0)
    def boom():
        raise RuntimeError("fails on purpose")

    @task
    def fine():
        return 1

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def cleanup():
        pass

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def alert():
        pass

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def quiet():
        pass

    @task
    def normal():
        pass

    b, f = boom(), fine()
    [b, f] >> cleanup()
    b >> alert()
    b >> normal()
    f >> quiet()

with DAG("teardown", schedule=None, start_date=datetime(2024, 1, 1)) as dag2:
    @task(retries=0)
    def work():
        raise RuntimeError("fails on purpose")

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def tidy():
        pass

    work() >> tidy()
"""


def test_trigger_rules_after_a_failure(cluster: Cluster) -> None:
    cluster.write_dag("rules.py", RULES)
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    rules = cluster.trigger("rules")
    teardown = cluster.trigger("teardown")
    # A failed leaf (normal is upstream_failed) fails the run.
    assert cluster.wait_run("rules", rules) == "failed"
    assert {t: ti.state for t, ti in cluster.tis("rules", rules).items()} == {
        "boom": "failed",
        "fine": "success",
        "cleanup": "success",
        "alert": "success",
        "quiet": "skipped",
        "normal": "upstream_failed",
    }
    # As in Airflow, the leaves decide: a failure followed by an all_done leaf that
    # succeeded ends the run in success.
    assert cluster.wait_run("teardown", teardown) == "success"
    assert {t: ti.state for t, ti in cluster.tis("teardown", teardown).items()} == {
        "work": "failed",
        "tidy": "success",
    }


AGAIN = """
from datetime import datetime
from pathlib import Path
from slipstream import DAG, task

COUNTS = Path({folder!r})

with DAG("again", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    def counted(name):
        @task(task_id=name)
        def run(**context):
            with open(COUNTS / name, "a") as f:
                f.write(f"{{context['ti'].try_number}}\\n")

        return run()

    counted("extract") >> counted("load")
"""


def test_clear_runs_a_finished_task_again_as_its_next_try(cluster: Cluster, tmp_path: Path) -> None:
    cluster.write_dag("again.py", AGAIN.format(folder=str(tmp_path)))
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    run_id = cluster.trigger("again")
    assert cluster.wait_run("again", run_id) == "success"

    result = clear_tasks(
        cluster.factory,
        "again",
        now=datetime.now(UTC),
        task_regex="^load$",
        run_id=run_id,
        database_url=cluster.config.database_url,
    )
    assert [t.task_id for t in result.tasks] == ["load"]
    assert result.requeued_runs == [run_id]
    assert cluster.wait_run("again", run_id) == "success"
    tis = cluster.tis("again", run_id)
    assert {t: (ti.state, ti.try_number) for t, ti in tis.items()} == {
        "extract": ("success", 1),
        "load": ("success", 2),
    }
    assert (tmp_path / "extract").read_text() == "1\n"
    assert (tmp_path / "load").read_text() == "1\n2\n"
    history = [(h.task_id, h.try_number, h.state) for h in cluster.history("again", run_id)]
    assert history == [
        ("extract", 1, "success"),
        ("load", 1, "success"),
        ("load", 2, "success"),
    ]


ROUTED = """
import time
from datetime import datetime
from slipstream import DAG, task

with DAG("routed", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def plain():
        time.sleep(1)

    @task(queue="special")
    def special():
        pass

    plain()
    special()
"""


def test_a_queue_is_served_only_by_workers_of_that_queue(cluster: Cluster) -> None:
    cluster.write_dag("routed.py", ROUTED)
    cluster.parse()
    cluster.scheduler()
    default = cluster.worker()
    run_id = cluster.trigger("routed")
    cluster.wait_ti("routed", run_id, "plain", lambda ti: ti.state == "success", "success")
    # The default worker was woken and claimed again on every heartbeat while plain ran:
    # it never took the special task.
    special = cluster.tis("routed", run_id)["special"]
    assert (special.state, special.try_number, special.pid) == ("queued", 1, None)

    routed = cluster.worker("--queues", "special")
    assert cluster.wait_run("routed", run_id) == "success"
    tis = cluster.tis("routed", run_id)
    assert tis["plain"].pid == default.pid
    assert (tis["special"].state, tis["special"].try_number) == ("success", 1)
    assert tis["special"].pid == routed.pid


BUSY = """
import time
from datetime import datetime
from pathlib import Path
from slipstream import DAG, task

COUNTS = Path({folder!r})

with DAG("busy", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def long():
        time.sleep(20)

    @task
    def quick(**context):
        with open(COUNTS / "quick", "a") as f:
            f.write(f"{{context['ti'].try_number}}\\n")

    long()
    quick()
"""


def test_clear_in_a_running_run_does_not_wait_for_the_safety_sweep(
    cluster: Cluster, tmp_path: Path
) -> None:
    if not cluster.config.database_url.startswith("sqlite"):
        pytest.skip("the wake-up path is the same on every database")
    cluster.env["SLIPSTREAM__SCHEDULER__SWEEP_INTERVAL"] = "120"
    cluster.write_dag("busy.py", BUSY.format(folder=str(tmp_path)))
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    run_id = cluster.trigger("busy")
    cluster.wait_ti("busy", run_id, "quick", lambda ti: ti.state == "success", "success")
    clear_tasks(
        cluster.factory,
        "busy",
        now=datetime.now(UTC),
        task_regex="^quick$",
        run_id=run_id,
        database_url=cluster.config.database_url,
    )
    # The run is still running (long sleeps): the cleared task runs again meanwhile.
    cluster.wait_ti(
        "busy",
        run_id,
        "quick",
        lambda ti: (ti.state, ti.try_number) == ("success", 2),
        "try 2 to succeed",
        deadline=6,
    )
    assert cluster.tis("busy", run_id)["long"].state == "running"


CLEARED_WHILE_RUNNING = """
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from slipstream import DAG, task

FOLDER = Path({folder!r})

with DAG("cleared", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def victim(**context):
        try_number = context["ti"].try_number
        (FOLDER / f"pid-{{try_number}}").write_text(str(os.getpid()))
        if try_number == 1:
            told = []
            signal.signal(signal.SIGTERM, lambda *_: told.append(True))
            for _ in range(1200):
                if told:
                    break
                time.sleep(0.05)
            time.sleep(5)  # cleaning up what it started takes a while
            raise RuntimeError("stopped")
        try:
            os.kill(int((FOLDER / "pid-1").read_text()), 0)
        except ProcessLookupError:
            return
        (FOLDER / "overlap").write_text("try 1 was still running when try 2 started")

    @task
    def ticker():
        for _ in range(600):
            if (FOLDER / "go").exists():
                return
            time.sleep(0.05)

    victim()
    ticker()
"""


def test_clearing_a_running_task_starts_its_next_try_only_once_the_first_stopped(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.write_dag("cleared.py", CLEARED_WHILE_RUNNING.format(folder=str(tmp_path)))
    cluster.parse()
    cluster.scheduler()
    cluster.worker()
    run_id = cluster.trigger("cleared")
    cluster.wait_ti("cleared", run_id, "ticker", lambda ti: ti.state == "running", "running")
    cluster.wait_for("try 1 to start", lambda s: (tmp_path / "pid-1").exists())
    first_pid = int((tmp_path / "pid-1").read_text())
    try:
        clear_tasks(
            cluster.factory,
            "cleared",
            now=datetime.now(UTC),
            task_regex="^victim$",
            run_id=run_id,
            database_url=cluster.config.database_url,
        )
        (tmp_path / "go").write_text("")  # ticker ends: the scheduler looks at the run
        assert cluster.wait_run("cleared", run_id) == "success"
        assert cluster.tis("cleared", run_id)["victim"].try_number == 2
        assert not (tmp_path / "overlap").exists(), (tmp_path / "overlap").read_text()
    finally:
        with contextlib.suppress(OSError):
            if b"slipstream" in Path(f"/proc/{first_pid}/cmdline").read_bytes():
                os.killpg(first_pid, signal.SIGKILL)  # a session leader: the group is its own
