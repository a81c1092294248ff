"""Serialized DAGs: JSON-able, deterministic, round-trip into the read-only view."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from slipstream import DAG, Param, TaskGroup, TriggerRule, dag, task, task_group
from slipstream.operators import BashOperator, EmptyOperator, PythonOperator
from slipstream.serialization import SerializedDag, dag_hash, serialize_dag


def _build(command: str = "echo {{ ds }}", extra_task: bool = False) -> DAG:
    with DAG(
        "etl",
        schedule="0 6 * * *",
        start_date=datetime(2024, 1, 1),
        params={"n": Param(3, type="integer"), "when": datetime(2024, 1, 2)},
        tags=["b", "a"],
        max_active_runs=2,
        dagrun_timeout=timedelta(minutes=5),
        catchup=True,
    ) as d:
        a = BashOperator(task_id="a", bash_command=command, priority_weight=2, retries=3)
        b = PythonOperator(task_id="b", python_callable=print, weight_rule="upstream")
        c = EmptyOperator(task_id="c", trigger_rule=TriggerRule.ALL_DONE, weight_rule="absolute")
        e = EmptyOperator(task_id="e", pool="p", pool_slots=2, depends_on_past=True)
        a >> [b, c] >> e
        if extra_task:
            e >> EmptyOperator(task_id="f")
    return d


def test_serialized_dag_is_json_and_sorted() -> None:
    data = serialize_dag(_build())
    assert json.loads(json.dumps(data)) == data
    assert [t["task_id"] for t in data["tasks"]] == ["a", "b", "c", "e"]
    assert data["tags"] == ["a", "b"]
    assert data["timetable"]["type"]
    assert data["start_date"].startswith("2024-01-01T00:00:00")
    assert data["dagrun_timeout"] == 300
    assert data["params"]["n"]["default"] == 3
    assert data["params"]["when"]["default"].startswith("2024-01-02")
    a = data["tasks"][0]
    assert a["operator_class"] == "BashOperator"
    assert a["downstream_task_ids"] == ["b", "c"]
    assert a["retries"] == 3 and a["retry_delay"] == 300
    assert a["template_values"]["bash_command"] == "echo {{ ds }}"


def test_priority_weight_totals_follow_airflow_weight_rules() -> None:
    tasks = {t["task_id"]: t for t in serialize_dag(_build())["tasks"]}
    assert tasks["a"]["priority_weight_total"] == 2 + 1 + 1 + 1  # downstream: b, c, e
    assert tasks["b"]["priority_weight_total"] == 1 + 2  # upstream: a
    assert tasks["c"]["priority_weight_total"] == 1  # absolute
    assert tasks["e"]["priority_weight_total"] == 1


def test_round_trip_into_serialized_dag() -> None:
    view = SerializedDag.from_dict(json.loads(json.dumps(serialize_dag(_build()))))
    assert view.dag_id == "etl"
    assert view.timetable.summary == "0 6 * * *"
    assert view.catchup is True and view.max_active_runs == 2
    assert view.dagrun_timeout == timedelta(minutes=5)
    assert view.start_date is not None and view.start_date.year == 2024
    assert view.param_defaults()["n"] == 3
    assert view.task_dict["c"].trigger_rule == TriggerRule.ALL_DONE
    assert view.task_dict["c"].is_empty and not view.task_dict["a"].is_empty
    assert view.task_dict["e"].pool == "p" and view.task_dict["e"].pool_slots == 2
    nodes = view.task_nodes()
    assert nodes["e"].upstream == frozenset({"b", "c"})
    assert nodes["e"].depends_on_past is True
    assert view.topological_order()[0] == "a"
    assert view.descendants(["b"]) == {"e"}


def test_hash_is_stable_and_changes_with_structure() -> None:
    first = dag_hash(serialize_dag(_build()))
    assert first == dag_hash(serialize_dag(_build()))
    assert first != dag_hash(serialize_dag(_build(extra_task=True)))
    assert first != dag_hash(serialize_dag(_build(command="echo changed")))


def test_taskflow_dag_serializes() -> None:
    @dag(schedule=None, start_date=datetime(2024, 1, 1))
    def flow(x: int = 1) -> None:
        @task(multiple_outputs=True)
        def make() -> dict[str, int]:
            return {"a": 1}

        @task
        def use(a: int) -> None:
            pass

        use(make()["a"])

    data = serialize_dag(flow())
    view = SerializedDag.from_dict(data)
    assert view.task_dict["use"].upstream_task_ids == frozenset({"make"})
    assert view.task_dict["make"].operator == "@task"
    assert data["tasks"][0]["multiple_outputs"] is True
    assert view.params["x"]["default"] == 1
    assert not view.timetable.can_be_scheduled


def _grouped(tooltip: str = "inner work") -> DAG:
    with DAG("grouped", schedule=None, start_date=datetime(2024, 1, 1)) as d:
        start = EmptyOperator(task_id="start")
        with TaskGroup("outer", ui_color="#abcdef") as outer:
            EmptyOperator(task_id="a")
            with TaskGroup("inner", tooltip=tooltip):
                EmptyOperator(task_id="b") >> EmptyOperator(task_id="c")
        start >> outer
    return d


def test_task_groups_are_serialized_as_a_tree() -> None:
    data = serialize_dag(_grouped())
    assert json.loads(json.dumps(data)) == data
    tasks = {t["task_id"]: t for t in data["tasks"]}
    assert tasks["start"]["task_group"] is None
    assert tasks["outer.a"]["task_group"] == "outer"
    assert tasks["outer.inner.b"]["task_group"] == "outer.inner"
    assert tasks["outer.inner.b"]["upstream_task_ids"] == ["start"]
    assert data["task_groups"] == [
        {
            "group_id": "outer",
            "label": "outer",
            "parent_group_id": None,
            "prefix_group_id": True,
            "children": ["outer.a", "outer.inner"],
            "tooltip": "",
            "ui_color": "#abcdef",
            "ui_fgcolor": "#000",
        },
        {
            "group_id": "outer.inner",
            "label": "inner",
            "parent_group_id": "outer",
            "prefix_group_id": True,
            "children": ["outer.inner.b", "outer.inner.c"],
            "tooltip": "inner work",
            "ui_color": "CornflowerBlue",
            "ui_fgcolor": "#000",
        },
    ]


def test_task_groups_round_trip_into_the_read_only_view() -> None:
    view = SerializedDag.from_dict(json.loads(json.dumps(serialize_dag(_grouped()))))
    assert sorted(view.task_groups) == ["outer", "outer.inner"]
    inner = view.task_groups["outer.inner"]
    assert inner.parent_group_id == "outer" and inner.label == "inner"
    assert inner.children == ("outer.inner.b", "outer.inner.c")
    assert view.task_dict["outer.inner.c"].task_group == "outer.inner"
    assert view.task_dict["start"].task_group is None
    assert view.group_task_ids("outer") == {"outer.a", "outer.inner.b", "outer.inner.c"}
    assert view.group_task_ids("outer.inner") == {"outer.inner.b", "outer.inner.c"}


def test_hash_with_groups_is_stable_and_follows_group_looks() -> None:
    first = dag_hash(serialize_dag(_grouped()))
    assert first == dag_hash(serialize_dag(_grouped()))
    assert first != dag_hash(serialize_dag(_grouped(tooltip="changed")))


def test_dag_serialized_before_task_groups_still_reads() -> None:
    data = serialize_dag(_build())
    assert data["task_groups"] == []
    del data["task_groups"]
    for t in data["tasks"]:
        del t["task_group"]
    view = SerializedDag.from_dict(data)
    assert view.task_groups == {} and view.task_dict["a"].task_group is None


def test_task_group_decorator_dag_serializes() -> None:
    @task_group
    def section() -> None:
        """Docstring tooltip."""
        EmptyOperator(task_id="t")

    @dag(schedule=None, start_date=datetime(2024, 1, 1))
    def flow() -> None:
        section() >> section()

    view = SerializedDag.from_dict(serialize_dag(flow()))
    assert view.task_dict["section__1.t"].upstream_task_ids == frozenset({"section.t"})
    assert view.task_groups["section"].tooltip == "Docstring tooltip."
    assert view.task_groups["section__1"].children == ("section__1.t",)
