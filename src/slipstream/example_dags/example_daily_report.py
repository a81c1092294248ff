"""A scheduled DAG: runs every day at midnight (in the DAG's time zone), without catchup.

With ``catchup=False`` only the latest complete day is run when the DAG is switched on,
not every day since ``start_date``.
"""

from datetime import datetime, timedelta

from slipstream import DAG
from slipstream.operators import BashOperator, EmptyOperator

with DAG(
    dag_id="example_daily_report",
    description="Build yesterday's report every day",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args={"owner": "analytics", "retries": 1, "retry_delay": timedelta(seconds=5)},
    tags=["example", "scheduled"],
) as dag:
    begin = EmptyOperator(task_id="begin")
    build = BashOperator(
        task_id="build_report",
        bash_command=("echo 'report for {{ data_interval_start }} to {{ data_interval_end }}'"),
        priority_weight=5,
    )
    publish = BashOperator(
        task_id="publish", bash_command="echo 'published report {{ ds_nodash }}'"
    )
    done = EmptyOperator(task_id="done")

    begin >> build >> publish >> done
