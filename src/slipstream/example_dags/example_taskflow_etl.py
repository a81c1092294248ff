"""A TaskFlow ETL: ``@dag`` and ``@task``; return values travel between tasks as XComs.

``transform`` uses ``multiple_outputs=True``, so each key of its result is also an XCom of
its own, and ``load`` can take ``totals["total"]`` alone.
"""

import json
from datetime import datetime

from slipstream import dag, task


@dag(
    schedule=None,
    start_date=datetime(2024, 1, 1),
    tags=["example", "taskflow"],
    default_args={"owner": "data-team"},
)
def example_taskflow_etl():
    """Extract orders, total them per customer, load the report."""

    @task()
    def extract() -> dict[str, list[dict[str, object]]]:
        raw = (
            '[{"customer": "ada", "amount": 30.5}, {"customer": "bob", "amount": 12},'
            ' {"customer": "ada", "amount": 7.25}]'
        )
        return {"orders": json.loads(raw)}

    @task(multiple_outputs=True)
    def transform(data: dict[str, list[dict[str, object]]]) -> dict[str, object]:
        per_customer: dict[str, float] = {}
        for order in data["orders"]:
            name = str(order["customer"])
            per_customer[name] = per_customer.get(name, 0.0) + float(str(order["amount"]))
        return {"per_customer": per_customer, "total": round(sum(per_customer.values()), 2)}

    @task()
    def load(per_customer: dict[str, float], total: float) -> None:
        for name, amount in sorted(per_customer.items()):
            print(f"{name}: {amount:.2f}")
        print(f"total: {total:.2f}")

    totals = transform(extract())
    load(totals["per_customer"], totals["total"])


# Calling the decorated function builds the DAG; the DAG processor collects module globals.
example_taskflow_etl()
