"""diamond_mix: wide/deep mix.

start >> 4 parallel branches, each a 5-task chain (a1..a5, b1..b5, c1..c5, d1..d5)
      >> join >> 10 independent tasks (w00..w09) >> end
All no-op Python tasks. 1 + 20 + 1 + 10 + 1 = 33 task instances per run.
Benchmark workload. slipstream syntax (same shape as the Airflow baseline).
"""

from __future__ import annotations

from slipstream import DAG, chain, task

BRANCHES = "abcd"
DEPTH = 5
WIDTH = 10


@task
def noop() -> None:
    """Do nothing; return None (no XCom payload)."""
    return None


with DAG(
    dag_id="diamond_mix",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["bench"],
) as dag:
    start = noop.override(task_id="start")()
    join = noop.override(task_id="join")()
    end = noop.override(task_id="end")()
    for b in BRANCHES:
        branch = [noop.override(task_id=f"{b}{i}")() for i in range(1, DEPTH + 1)]
        chain(start, *branch, join)
    wide = [noop.override(task_id=f"w{i:02d}")() for i in range(WIDTH)]
    join >> wide >> end
