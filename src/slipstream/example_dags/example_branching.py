"""Branching and short-circuiting.

``choose`` follows ``weekday`` or ``weekend`` depending on the run's logical date; the other
path is skipped, and ``join`` (trigger rule ``none_failed_min_one_success``) runs after
whichever ran. ``should_publish`` reads the ``publish`` param: when it is false, ``publish``
and everything after it are skipped. ``publish`` is a ``@task.bash`` task: its function
returns the command to run.
"""

from datetime import datetime
from typing import Any

from slipstream import DAG, TriggerRule, task
from slipstream.operators import BashOperator, BranchPythonOperator, EmptyOperator


def weekday_or_weekend(logical_date: datetime) -> str:
    return "weekend" if logical_date.weekday() >= 5 else "weekday"


with DAG(
    dag_id="example_branching",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={"publish": True},
    tags=["example", "branching"],
) as dag:
    choose = BranchPythonOperator(task_id="choose", python_callable=weekday_or_weekend)
    weekday = BashOperator(task_id="weekday", bash_command="echo 'a working day: {{ ds }}'")
    weekend = BashOperator(task_id="weekend", bash_command="echo 'a day off: {{ ds }}'")
    join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)

    @task.short_circuit
    def should_publish(**context: Any) -> bool:
        return bool(context["params"]["publish"])

    @task.bash
    def publish() -> str:
        return "echo 'published the report of {{ ds }}'"  # rendered like bash_command

    done = EmptyOperator(task_id="done")

    choose >> [weekday, weekend] >> join
    join >> should_publish() >> publish() >> done
