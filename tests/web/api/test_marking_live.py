"""Marking a task that a real worker is running: the worker stops the process, the state
set through the API stays, and the scheduler carries the run on from there."""

from __future__ import annotations

from pathlib import Path

from .conftest import Api, Processes, wait_until

SLEEPY_DAG = """
from datetime import datetime

from slipstream.sdk import DAG
from slipstream.sdk.operators.bash import BashOperator

with DAG("sleepy", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    nap = BashOperator(
        task_id="nap", bash_command="echo $$ > {pidfile}; echo napping; exec sleep 120"
    )
    after = BashOperator(task_id="after", bash_command="echo after")
    nap >> after
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie nobody reaped yet counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def test_marking_a_running_task_stops_it_and_the_mark_wins(
    cluster_web: tuple[Api, Processes],
) -> None:
    api, procs = cluster_web
    pidfile = api.web.config.home / "nap.pid"
    api.web.write_dag("sleepy.py", SLEEPY_DAG.replace("{pidfile}", str(pidfile)))
    api.web.parse()
    procs.start("scheduler")
    procs.start("worker")
    run = api.post("/dags/sleepy/dagRuns", {"dag_run_id": "r1"})
    path = "/dags/sleepy/dagRuns/r1/taskInstances"

    def napping() -> bool:
        procs.check_alive()
        return api.get(f"{path}/nap")["state"] == "running" and pidfile.exists()

    wait_until("the nap task to run", napping)
    pid = int(wait_until("the task's pid", lambda: pidfile.read_text().strip()))
    assert _alive(pid)
    live = api.get(f"{path}/nap/logs/1")
    assert live["live"] is True

    changed = api.patch(f"{path}/nap", {"new_state": "success"})
    assert [t["task_id"] for t in changed["task_instances"]] == ["nap"]

    # the worker's next heartbeat finds the row changed and kills the process group
    wait_until("the worker to stop the task", lambda: not _alive(pid))
    # the scheduler, woken by the mark, runs what follows; the run ends success
    wait_until(
        "the run to finish",
        lambda: api.get(f"/dags/sleepy/dagRuns/{run['dag_run_id']}")["state"] == "success",
    )
    states = api.states("r1", dag_id="sleepy")
    assert states == {"nap": "success", "after": "success"}
    nap = api.get(f"{path}/nap")
    assert nap["try_number"] == 1 and nap["error"] is None
    tries = api.get(f"{path}/nap/tries")["task_instances"]
    assert [(t["try_number"], t["state"], t["error"]) for t in tries] == [
        (1, "success", "marked success by admin")
    ]
    log = api.get(f"{path}/nap/logs/1")
    assert "napping" in log["content"] and log["live"] is False
    procs.check_alive()
