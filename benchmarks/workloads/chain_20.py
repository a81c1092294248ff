"""chain_20: 20 no-op Python tasks in a strict chain t01 >> t02 >> ... >> t20.

Benchmark workload. slipstream syntax (same shape as the Airflow baseline).
"""

from __future__ import annotations

from slipstream import DAG, chain, task

N = 20


@task
def noop() -> None:
    """Do nothing; return None (no XCom payload)."""
    return None


with DAG(
    dag_id="chain_20",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["bench"],
) as dag:
    chain(*[noop.override(task_id=f"t{i:02d}")() for i in range(1, N + 1)])
