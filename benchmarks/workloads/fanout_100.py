"""fanout_100: start >> [f000 .. f099] (100 independent tasks) >> end. All no-op Python tasks.

Benchmark workload. slipstream syntax (same shape as the Airflow baseline). 102 task instances per run.
"""

from __future__ import annotations

from slipstream import DAG, task

N = 100


@task
def noop() -> None:
    """Do nothing; return None (no XCom payload)."""
    return None


with DAG(
    dag_id="fanout_100",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["bench"],
) as dag:
    start = noop.override(task_id="start")()
    end = noop.override(task_id="end")()
    fan = [noop.override(task_id=f"f{i:03d}")() for i in range(N)]
    start >> fan >> end
