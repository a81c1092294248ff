"""TaskGroups: tasks grouped, and nested, by stage.

``extract`` holds one ``@task_group`` per source, so its tasks are ``extract.orders.fetch``,
``extract.orders.clean``, ``extract.refunds.fetch``... ``report`` lends its tasks a
``default_args`` of its own, and ``start >> extract >> report`` links the groups' edge tasks:
``start`` before every ``fetch``, every ``clean`` before ``report.combine``.
"""

from datetime import datetime, timedelta

from slipstream import DAG, TaskGroup, task, task_group
from slipstream.operators import BashOperator, EmptyOperator

SOURCES = {"orders": [30, -1, 10, 20], "refunds": [5, 0]}


@task
def fetch(source: str) -> list[int]:
    return SOURCES[source]


@task
def clean(values: list[int]) -> list[int]:
    return sorted(v for v in values if v > 0)


@task_group
def extract_source(source: str):
    """Fetch one source and drop its bad rows."""
    return clean(fetch(source))


@task
def combine(orders: list[int], refunds: list[int]) -> int:
    return sum(orders) - sum(refunds)


with DAG(
    dag_id="example_task_groups",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    tags=["example", "task_groups"],
) as dag:
    start = EmptyOperator(task_id="start")

    with TaskGroup("extract", tooltip="one group per source") as extract:
        orders = extract_source.override(group_id="orders")("orders")
        refunds = extract_source.override(group_id="refunds")("refunds")

    with TaskGroup(
        "report", default_args={"retries": 1, "retry_delay": timedelta(seconds=1)}
    ) as report:
        total = combine(orders, refunds)
        with TaskGroup("publish") as publish:
            BashOperator(
                task_id="announce",
                bash_command="echo 'net total: {{ ti.xcom_pull(task_ids=\"report.combine\") }}'",
            )
            BashOperator(task_id="archive", bash_command="echo 'archived the {{ ds }} report'")
        total >> publish

    start >> extract >> report
