"""Retries and trigger rules.

``flaky`` fails on its first try and succeeds on the retry (it leaves a marker file in the
temp folder, one per run). ``always_fails`` fails for good, so ``on_failure`` (trigger rule
``one_failed``) runs while ``on_success`` (``all_success``) is marked upstream_failed, and
``cleanup`` (``all_done``) runs whatever happened.
"""

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from slipstream import DAG, TriggerRule
from slipstream.operators import BashOperator, EmptyOperator, PythonOperator


def flaky(dag_run, try_number: int) -> str:
    marker = Path(tempfile.gettempdir()) / f"slipstream-example-flaky-{dag_run.run_id}".replace(
        ":", "_"
    ).replace("+", "_")
    if not marker.exists():
        marker.write_text(str(try_number))
        raise RuntimeError("first try fails on purpose; the retry will succeed")
    marker.unlink()
    return f"succeeded on try {try_number}"


with DAG(
    dag_id="example_trigger_rules",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    default_args={"retry_delay": timedelta(seconds=1)},
    tags=["example", "retries"],
) as dag:
    start = EmptyOperator(task_id="start")
    flaky_task = PythonOperator(task_id="flaky", python_callable=flaky, retries=2)
    always_fails = BashOperator(task_id="always_fails", bash_command="echo 'no luck'; exit 1")
    on_success = EmptyOperator(task_id="on_success")
    on_failure = BashOperator(
        task_id="on_failure",
        bash_command="echo 'an upstream task failed'",
        trigger_rule=TriggerRule.ONE_FAILED,
    )
    cleanup = BashOperator(
        task_id="cleanup", bash_command="echo 'cleaning up'", trigger_rule=TriggerRule.ALL_DONE
    )

    start >> [flaky_task, always_fails]
    [flaky_task, always_fails] >> on_success
    [flaky_task, always_fails] >> on_failure
    [on_success, on_failure] >> cleanup
