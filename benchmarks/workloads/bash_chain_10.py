"""bash_chain_10: 10 BashOperator tasks running `true`, in a strict chain b01 >> ... >> b10.

Benchmark workload. slipstream syntax (same shape as the Airflow baseline).
"""

from __future__ import annotations

from slipstream import DAG, chain
from slipstream.operators import BashOperator

N = 10

with DAG(
    dag_id="bash_chain_10",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["bench"],
) as dag:
    chain(*[BashOperator(task_id=f"b{i:02d}", bash_command="true") for i in range(1, N + 1)])
