"""The rows of the grid: dependency order, a TaskGroup's tasks kept together."""

from __future__ import annotations

from slipstream import DAG, TaskGroup
from slipstream.sdk.operators.empty import EmptyOperator
from slipstream.serialization import SerializedDag, serialize_dag
from slipstream.service.overview import grid_rows


def test_groups_stay_together_where_their_first_task_falls() -> None:
    with DAG("g", schedule=None) as dag:
        start = EmptyOperator(task_id="start")
        mid = EmptyOperator(task_id="mid")
        with TaskGroup("load"):
            orders = EmptyOperator(task_id="orders")
            with TaskGroup("inner", prefix_group_id=False):
                items = EmptyOperator(task_id="items")
        end = EmptyOperator(task_id="end")
        start >> [orders, mid]
        orders >> items
        mid >> items >> end
    serialized = SerializedDag.from_dict(serialize_dag(dag))
    # plain dependency order would put "mid" between the group's two tasks
    assert serialized.topological_order() == ["start", "load.orders", "mid", "items", "end"]
    rows = grid_rows(serialized)
    assert [r.task_id for r in rows] == ["start", "load.orders", "items", "mid", "end"]
    assert [(r.label, r.group, r.depth) for r in rows[1:3]] == [
        ("orders", ("load",), 1),
        ("items", ("load", "load.inner"), 2),
    ]
    assert rows[0].operator == "EmptyOperator" and rows[0].group == ()


def test_a_dag_without_groups_is_in_dependency_order() -> None:
    with DAG("plain", schedule=None) as dag:
        EmptyOperator(task_id="b") >> EmptyOperator(task_id="a")
        EmptyOperator(task_id="c")
    rows = grid_rows(SerializedDag.from_dict(serialize_dag(dag)))
    assert [r.task_id for r in rows] == ["b", "a", "c"]
