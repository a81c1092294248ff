"""TaskGroup and @task_group: ids, nesting, default_args, dependencies, TaskFlow inside groups."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import slipstream
import slipstream.sdk
from slipstream import DAG, TaskGroup, XComArg, chain, dag, task, task_group
from slipstream.errors import CycleError, DagDefinitionError, DuplicateTaskIdError
from slipstream.operators import EmptyOperator


def edges(d: DAG) -> set[tuple[str, str]]:
    return {(t.task_id, down) for t in d.tasks for down in t.downstream_task_ids}


def _pair(group_id: str) -> TaskGroup:
    """A group holding ``first >> second``."""
    with TaskGroup(group_id) as group:
        EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
    return group


# --- ids and membership -------------------------------------------------------------


def test_exported_with_airflow_names() -> None:
    assert slipstream.TaskGroup is slipstream.sdk.TaskGroup is TaskGroup
    assert slipstream.task_group is slipstream.sdk.task_group is task_group
    assert {"TaskGroup", "task_group"} <= set(slipstream.__all__)


def test_tasks_in_a_group_get_its_prefix() -> None:
    with DAG("d") as d:
        top = EmptyOperator(task_id="top")
        with TaskGroup("extract", tooltip="pull the data") as tg:
            a = EmptyOperator(task_id="a")
    assert a.task_id == "extract.a"
    assert d.task_ids == ["top", "extract.a"]
    assert a.task_group is tg and tg.dag is d
    assert top.task_group is d.task_group
    assert d.task_group.group_id is None and d.task_group.is_root
    assert list(tg.children) == ["extract.a"] and tg.children["extract.a"] is a
    assert list(d.task_group.children) == ["top", "extract"]
    assert tg.get_child_by_label("a") is a
    assert tg.tooltip == "pull the data" and tg.ui_color == "CornflowerBlue"
    assert repr(tg) == "<TaskGroup: extract>"


def test_nested_groups_prefix_every_level() -> None:
    with DAG("d") as d, TaskGroup("outer") as outer:
        EmptyOperator(task_id="a")
        with TaskGroup("inner") as inner:
            b = EmptyOperator(task_id="b")
    assert b.task_id == "outer.inner.b"
    assert inner.group_id == "outer.inner" and inner.label == "inner"
    assert inner.parent_group is outer and outer.parent_group is d.task_group
    assert list(outer.children) == ["outer.a", "outer.inner"]
    assert [t.task_id for t in outer] == ["outer.a", "outer.inner.b"]
    assert d.task_group_dict == {"outer": outer, "outer.inner": inner}


def test_prefix_group_id_false_keeps_the_ids_as_written() -> None:
    with DAG("d") as d, TaskGroup("outer", prefix_group_id=False) as outer:
        a = EmptyOperator(task_id="a")
        with TaskGroup("inner") as inner:
            b = EmptyOperator(task_id="b")
    assert a.task_id == "a" and a.task_group is outer
    # as in Airflow: the parent decides whether its children carry its id
    assert inner.group_id == "inner"
    assert b.task_id == "inner.b"
    assert sorted(d.task_ids) == ["a", "inner.b"]


def test_group_with_explicit_dag_and_parent_outside_a_with_block() -> None:
    d = DAG("d")
    outer = TaskGroup("outer", dag=d)
    inner = TaskGroup("inner", parent_group=outer)
    a = EmptyOperator(task_id="a", task_group=inner)
    with TaskGroup("loose", dag=d):
        b = EmptyOperator(task_id="b")  # no DAG open: it joins the group's DAG
    assert a.task_id == "outer.inner.a" and a.dag is d
    assert b.task_id == "loose.b" and b.dag is d


def test_group_outside_a_dag_is_refused() -> None:
    with pytest.raises(DagDefinitionError, match="TaskGroup 'g' is not in a DAG"):
        TaskGroup("g")


def test_group_and_task_of_different_dags_are_refused() -> None:
    d1, d2 = DAG("d1"), DAG("d2")
    tg = TaskGroup("g", dag=d1)
    with pytest.raises(DagDefinitionError, match=r"'d1'.*'d2'"):
        EmptyOperator(task_id="a", dag=d2, task_group=tg)
    with pytest.raises(DagDefinitionError, match=r"'d1'.*'d2'"):
        TaskGroup("h", parent_group=tg, dag=d2)


@pytest.mark.parametrize("bad", ["", "a b", "x/y", 3])
def test_bad_group_id_is_refused(bad: Any) -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="group_id"):
        TaskGroup(bad)


def test_duplicate_group_id_in_one_parent_is_an_error_naming_it() -> None:
    with DAG("d"):
        TaskGroup("extract")
        with pytest.raises(DuplicateTaskIdError, match="group_id 'extract'"):
            TaskGroup("extract")
        with TaskGroup("outer"):
            TaskGroup("inner")
            with pytest.raises(DuplicateTaskIdError, match=r"group_id 'outer\.inner'"):
                TaskGroup("inner")


def test_same_label_in_different_parents_is_fine() -> None:
    with DAG("d") as d:
        for parent in ("a", "b"):
            with TaskGroup(parent), TaskGroup("load"):
                EmptyOperator(task_id="t")
    assert sorted(d.task_ids) == ["a.load.t", "b.load.t"]


def test_group_and_task_cannot_share_an_id() -> None:
    with DAG("d"):
        EmptyOperator(task_id="x")
        with pytest.raises(DuplicateTaskIdError, match="task_id 'x'"):
            TaskGroup("x")
        TaskGroup("y")
        with pytest.raises(DuplicateTaskIdError, match="group_id 'y'"):
            EmptyOperator(task_id="y")


def test_task_that_joins_its_dag_late_is_in_the_root_group() -> None:
    late = EmptyOperator(task_id="late")
    assert late.task_group is None
    with DAG("d") as d, TaskGroup("g"):
        a = EmptyOperator(task_id="a")
    a >> late
    assert late.dag is d and late.task_group is d.task_group
    assert late.task_id == "late"


# --- default_args -------------------------------------------------------------------


def test_group_default_args_extend_the_dags_and_the_task_wins() -> None:
    dag_args = {"retries": 1, "owner": "dag-owner", "queue": "q"}
    with DAG("d", default_args=dag_args):
        outside = EmptyOperator(task_id="outside")
        with TaskGroup("g", default_args={"retries": 3, "pool": "p"}):
            a = EmptyOperator(task_id="a")
            own = EmptyOperator(task_id="own", retries=7)
            with TaskGroup("inner", default_args={"owner": "inner-owner"}):
                b = EmptyOperator(task_id="b")
            with TaskGroup("other", default_args={"retries": 5}):
                c = EmptyOperator(task_id="c", default_args={"retry_delay": 9})
    assert (outside.retries, outside.pool, outside.owner) == (1, "default_pool", "dag-owner")
    assert (a.retries, a.pool, a.owner, a.queue) == (3, "p", "dag-owner", "q")
    assert own.retries == 7
    assert (b.retries, b.pool, b.owner) == (3, "p", "inner-owner")
    assert (c.retries, c.retry_delay) == (5, timedelta(seconds=9))


def test_group_default_args_reach_taskflow_tasks() -> None:
    @task
    def work() -> None: ...

    with DAG("d") as d, TaskGroup("g", default_args={"retries": 2}):
        work()
    assert d.get_task("g.work").retries == 2


# --- dependencies -------------------------------------------------------------------


def test_task_to_group_links_to_the_groups_roots() -> None:
    with DAG("d") as d:
        start = EmptyOperator(task_id="start")
        with TaskGroup("g") as g:
            a, b, c = (EmptyOperator(task_id=i) for i in "abc")
            a >> c
            b >> c
        start >> g
    assert edges(d) == {("g.a", "g.c"), ("g.b", "g.c"), ("start", "g.a"), ("start", "g.b")}


def test_group_to_list_links_the_groups_leaves() -> None:
    with DAG("d") as d:
        g = _pair("g")
        x, y = EmptyOperator(task_id="x"), EmptyOperator(task_id="y")
        result = g >> [x, y]
    assert result == [x, y]
    assert edges(d) == {("g.first", "g.second"), ("g.second", "x"), ("g.second", "y")}


def test_group_to_group_links_leaves_to_roots() -> None:
    with DAG("d") as d:
        g1, g2, g3 = _pair("g1"), _pair("g2"), _pair("g3")
        assert g1 >> g2 >> g3 is g3
    inner = {(f"{g}.first", f"{g}.second") for g in ("g1", "g2", "g3")}
    assert edges(d) == inner | {("g1.second", "g2.first"), ("g2.second", "g3.first")}


def test_list_of_groups_upstream_of_a_task_uses_their_leaves() -> None:
    with DAG("d") as d:
        g1, g2 = _pair("g1"), _pair("g2")
        c = EmptyOperator(task_id="c")
        assert [g1, g2] >> c is c
    assert {e for e in edges(d) if e[1] == "c"} == {("g1.second", "c"), ("g2.second", "c")}


def test_list_of_tasks_upstream_of_a_group_and_left_shifts() -> None:
    with DAG("d") as d:
        g = _pair("g")
        a, b, z = (EmptyOperator(task_id=i) for i in "abz")
        [a, b] >> g
        g << EmptyOperator(task_id="pre")
        z << g
        [EmptyOperator(task_id="post")] << g
    assert d.get_task("g.first").upstream_task_ids == {"a", "b", "pre"}
    assert d.get_task("g.second").downstream_task_ids == {"z", "post"}


def test_group_dependencies_use_set_upstream_and_set_downstream() -> None:
    with DAG("d") as d:
        g = _pair("g")
        before, after = EmptyOperator(task_id="before"), EmptyOperator(task_id="after")
        g.set_upstream(before)
        g.set_downstream(after)
        before.set_downstream(_pair("h"))
        after.set_upstream(_pair("k"))
    assert ("before", "g.first") in edges(d) and ("g.second", "after") in edges(d)
    assert ("before", "h.first") in edges(d) and ("k.second", "after") in edges(d)


def test_nested_groups_roots_and_leaves_span_the_nested_tasks() -> None:
    with DAG("d") as d:
        with TaskGroup("outer") as outer:
            inner = _pair("inner")
            solo = EmptyOperator(task_id="solo")
        EmptyOperator(task_id="start") >> outer >> EmptyOperator(task_id="end")
    assert {t.task_id for t in outer.roots} == {"outer.inner.first", "outer.solo"}
    assert {t.task_id for t in outer.leaves} == {"outer.inner.second", "outer.solo"}
    assert d.get_task("end").upstream_task_ids == {"outer.inner.second", solo.task_id}
    assert [t.task_id for t in inner.roots] == ["outer.inner.first"]


def test_chain_and_xcomarg_with_groups() -> None:
    @task
    def produce() -> int:
        return 1

    with DAG("d") as d:
        g1, g2 = _pair("g1"), _pair("g2")
        out = produce()
        chain(g1, g2, out)
        out >> _pair("g3")
    assert ("g1.second", "g2.first") in edges(d)
    assert ("g2.second", "produce") in edges(d)
    assert ("produce", "g3.first") in edges(d)


def test_empty_group_links_nothing() -> None:
    # as in Airflow: roots and leaves are taken when the dependency is written
    with DAG("d") as d:
        empty = TaskGroup("empty")
        a = EmptyOperator(task_id="a")
        a >> empty >> EmptyOperator(task_id="b")
    assert edges(d) == set()


def test_cycle_across_groups_names_the_tasks() -> None:
    with DAG("d"):
        g1, g2 = _pair("g1"), _pair("g2")
        g1 >> g2
        with pytest.raises(CycleError, match=r"g2\.second -> g1\.first -> g1\.second -> g2\.first"):
            g2 >> g1


# --- TaskFlow and @task_group -----------------------------------------------------


@task
def step(value: int = 0) -> int:
    return value + 1


def test_taskflow_task_ids_get_the_group_prefix_and_stay_unique() -> None:
    with DAG("d") as d:
        top = step()
        with TaskGroup("g"):
            first = step(top)
            second = step(first)
        with TaskGroup("h"):
            other = step()
    assert [top.operator.task_id, first.operator.task_id, second.operator.task_id] == [
        "step",
        "g.step",
        "g.step__1",
    ]
    assert other.operator.task_id == "h.step"
    assert d.get_task("g.step__1").upstream_task_ids == {"g.step"}
    assert d.get_task("g.step").upstream_task_ids == {"step"}


def test_taskflow_override_task_id_inside_a_group() -> None:
    with DAG("d") as d, TaskGroup("g"):
        step.override(task_id="named")()
        step.override(task_id="named")()
    assert sorted(d.task_ids) == ["g.named", "g.named__1"]


def test_task_group_decorator_returns_the_functions_value() -> None:
    @task_group
    def extract() -> XComArg:
        """Pull and clean."""
        return step(step())

    @task_group(tooltip="store it")
    def load(value: XComArg) -> XComArg:
        return step(value)

    with DAG("d") as d:
        raw = extract()
        assert isinstance(raw, XComArg)
        loaded = load(raw)
        raw >> EmptyOperator(task_id="audit")
    assert raw.operator.task_id == "extract.step__1"
    assert loaded.operator.task_id == "load.step"
    assert d.get_task("load.step").upstream_task_ids == {"extract.step__1"}
    assert d.task_group_dict["extract"].tooltip == "Pull and clean."
    assert d.task_group_dict["load"].tooltip == "store it"
    assert ("extract.step__1", "audit") in edges(d)


def test_task_group_decorator_without_return_gives_the_group() -> None:
    @task_group(group_id="prepare", default_args={"retries": 4})
    def setup() -> None:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")

    with DAG("d") as d:
        start = EmptyOperator(task_id="start")
        group = setup()
        assert isinstance(group, TaskGroup)
        start >> group >> EmptyOperator(task_id="end")
    assert group.group_id == "prepare"
    assert d.get_task("prepare.a").retries == 4
    assert ("start", "prepare.a") in edges(d) and ("prepare.b", "end") in edges(d)


def test_task_group_decorator_called_twice_gets_a_suffix() -> None:
    @task_group
    def section() -> None:
        step()

    with DAG("d") as d:
        first, second, third = section(), section(), section()
        first >> second >> third
    assert [g.group_id for g in (first, second, third)] == ["section", "section__1", "section__2"]
    assert ("section.step", "section__1.step") in edges(d)
    assert ("section__1.step", "section__2.step") in edges(d)


def test_task_group_decorator_nests_and_takes_a_positional_id() -> None:
    @task_group("inner_work")
    def inner() -> XComArg:
        return step()

    @task_group
    def outer() -> XComArg:
        return step(inner())

    with DAG("d") as d:
        outer()
        outer()
    assert sorted(d.task_ids) == [
        "outer.inner_work.step",
        "outer.step",
        "outer__1.inner_work.step",
        "outer__1.step",
    ]


def test_task_group_decorator_checks_its_arguments() -> None:
    @task_group
    def needs(x: int) -> None: ...

    with DAG("d"), pytest.raises(DagDefinitionError, match="@task_group needs"):
        needs()


def test_task_group_override() -> None:
    @task_group
    def section() -> None:
        EmptyOperator(task_id="a")

    with DAG("d") as d:
        section.override(group_id="custom", prefix_group_id=False)()
    assert d.task_ids == ["a"] and d.get_task("a").task_group is d.task_group_dict["custom"]


def test_groups_inside_a_dag_decorated_function() -> None:
    @dag(schedule=None)
    def pipeline() -> None:
        @task_group
        def extract() -> XComArg:
            return step()

        extract() >> step()

    d = pipeline()
    assert edges(d) == {("extract.step", "step")}
    d.validate()
