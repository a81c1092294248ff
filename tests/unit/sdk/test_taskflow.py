"""TaskFlow: @task, XComArg wiring, multiple_outputs, override, unique ids, XCom errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from slipstream import DAG, XComArg, get_current_context, task
from slipstream.errors import DagDefinitionError, SlipstreamError, XComError
from slipstream.operators import BashOperator, EmptyOperator
from slipstream.sdk.context import set_current_context
from slipstream.sdk.decorators import DecoratedPythonOperator
from slipstream.sdk.taskinstance import RuntimeTaskInstance


@task
def extract() -> list[int]:
    return [1, 2, 3]


@task
def total(values: list[int], factor: int = 1) -> int:
    return sum(values) * factor


def _run(op: Any, make_context: Any, **kwargs: Any) -> tuple[Any, Any]:
    ctx = make_context(op, **kwargs)
    op.render_template_fields(ctx)
    return op.execute(ctx), ctx


def test_task_call_adds_a_decorated_operator() -> None:
    with DAG("d") as d:
        out = extract()
    assert isinstance(out, XComArg)
    assert out.key == "return_value"
    assert isinstance(out.operator, DecoratedPythonOperator)
    assert d.task_ids == ["extract"]


def test_xcomarg_argument_creates_dependency() -> None:
    with DAG("d") as d:
        t = total(extract(), factor=2)
    assert d.get_task("extract").downstream_task_ids == {"total"}
    assert t.operator.upstream_task_ids == {"extract"}


def test_xcomargs_nested_in_containers_create_dependencies() -> None:
    @task
    def combine(items: dict[str, Any]) -> None: ...

    with DAG("d") as d:
        a = extract.override(task_id="a")()
        b = extract.override(task_id="b")()
        combine({"x": [a], "y": (b,)})
    assert d.get_task("combine").upstream_task_ids == {"a", "b"}


def test_xcomarg_is_resolved_at_run_time(make_context) -> None:  # type: ignore[no-untyped-def]
    with DAG("d"):
        t = total(extract(), factor=2)
    result, _ = _run(t.operator, make_context, xcoms={("extract", "return_value"): [4, 5]})
    assert result == 18


def test_xcomarg_key_access(make_context) -> None:  # type: ignore[no-untyped-def]
    @task(multiple_outputs=True)
    def split() -> dict[str, int]:
        return {"a": 1, "b": 2}

    @task
    def show(value: int) -> int:
        return value

    with DAG("d"):
        s = split()
        shown = show(s["b"])
    assert s["b"].key == "b"
    assert shown.operator.upstream_task_ids == {"split"}
    result, _ = _run(shown.operator, make_context, xcoms={("split", "b"): 20})
    assert result == 20


def test_multiple_outputs_pushes_each_key(make_context) -> None:  # type: ignore[no-untyped-def]
    @task(multiple_outputs=True)
    def stats():  # type: ignore[no-untyped-def]
        return {"count": 3, "names": ["a"]}

    with DAG("d"):
        s = stats()
    assert s.operator.multiple_outputs is True
    result, ctx = _run(s.operator, make_context)
    assert result == {"count": 3, "names": ["a"]}
    ti = ctx["ti"]
    assert ti.xcom_pull(key="count") == 3
    assert ti.xcom_pull(key="names") == ["a"]


def test_multiple_outputs_inferred_from_dict_annotation(make_context) -> None:  # type: ignore[no-untyped-def]
    @task
    def typed() -> dict[str, int]:
        return {"x": 1}

    @task
    def plain() -> int:
        return 1

    @task
    def unannotated():  # type: ignore[no-untyped-def]
        return {"x": 1}

    with DAG("d"):
        t = typed()
        p = plain()
        u = unannotated()
    assert t.operator.multiple_outputs is True
    assert p.operator.multiple_outputs is False
    assert u.operator.multiple_outputs is False
    _, ctx = _run(t.operator, make_context)
    assert ctx["ti"].pushed == {"x": "1"}


def test_multiple_outputs_can_be_switched_off_explicitly() -> None:
    @task(multiple_outputs=False)
    def typed() -> dict[str, int]:
        return {"x": 1}

    with DAG("d"):
        t = typed()
    assert t.operator.multiple_outputs is False


def test_multiple_outputs_needs_a_dict(make_context) -> None:  # type: ignore[no-untyped-def]
    @task(multiple_outputs=True)
    def bad():  # type: ignore[no-untyped-def]
        return [1, 2]

    with DAG("d"):
        b = bad()
    with pytest.raises(XComError, match=r"'bad'.*list"):
        _run(b.operator, make_context)


def test_multiple_outputs_value_not_json_serializable(make_context) -> None:  # type: ignore[no-untyped-def]
    @task(multiple_outputs=True)
    def bad():  # type: ignore[no-untyped-def]
        return {"when": datetime(2024, 1, 1)}

    with DAG("d"):
        b = bad()
    with pytest.raises(XComError) as info:
        _run(b.operator, make_context)
    assert "'bad'" in str(info.value) and "'when'" in str(info.value)


def test_return_value_not_json_serializable_names_the_task() -> None:
    with DAG("d"):
        op = extract.override(task_id="producer")().operator
    ti = RuntimeTaskInstance(task=op, dag_id="d", run_id="r", try_number=1)
    with pytest.raises(XComError) as info:
        ti.xcom_push("return_value", {1, 2})
    message = str(info.value)
    assert "'producer'" in message
    assert "return value" in message
    assert "JSON" in message
    with pytest.raises(XComError, match="XCom 'k'"):
        ti.xcom_push("k", float("nan"))
    with pytest.raises(XComError, match="key"):
        ti.xcom_push("", 1)
    ti.xcom_push("ok", {"a": [1, None]})
    assert ti.xcom_pull(key="ok") == {"a": [1, None]}


def test_xcom_pull_several_tasks_and_default(make_context) -> None:  # type: ignore[no-untyped-def]
    with DAG("d"):
        op = EmptyOperator(task_id="t")
    ctx = make_context(op, xcoms={("a", "return_value"): 1, ("b", "return_value"): 2})
    ti = ctx["ti"]
    assert ti.xcom_pull(task_ids="a") == 1
    assert ti.xcom_pull(task_ids=["a", "b", "c"]) == [1, 2, None]
    assert ti.xcom_pull(task_ids="c", default="none") == "none"


def test_override_task_id_and_arguments() -> None:
    with DAG("d") as d:
        a = extract.override(task_id="first", retries=3)()
        b = extract()
    assert a.operator.task_id == "first"
    assert a.operator.retries == 3
    assert b.operator.task_id == "extract"
    assert b.operator.retries == 0
    assert set(d.task_ids) == {"first", "extract"}


def test_same_task_called_twice_gets_unique_ids() -> None:
    with DAG("d") as d:
        extract()
        extract()
        extract()
    assert d.task_ids == ["extract", "extract__1", "extract__2"]


def test_task_options_and_docstring() -> None:
    @task(retries=2, pool="p", trigger_rule="all_done")
    def documented() -> None:
        """Does a thing."""

    with DAG("d"):
        op = documented().operator
    assert (op.retries, op.pool, op.trigger_rule) == (2, "p", "all_done")
    assert op.doc_md == "Does a thing."


def test_task_python_alias() -> None:
    @task.python(task_id="renamed")
    def f() -> int:
        return 1

    with DAG("d") as d:
        f()
    assert d.task_ids == ["renamed"]


def test_wrong_call_arguments_are_a_definition_error() -> None:
    with DAG("d"), pytest.raises(DagDefinitionError, match="total"):
        total(1, 2, 3)


def test_task_decorator_takes_keywords_only() -> None:
    with pytest.raises(DagDefinitionError, match="keyword"):
        task("not a function")  # type: ignore[call-overload]


def test_xcomarg_with_classic_operators() -> None:
    with DAG("d") as d:
        start = EmptyOperator(task_id="start")
        e = extract()
        end = BashOperator(task_id="end", bash_command="echo done")
        start >> e >> end
    assert d.get_task("extract").upstream_task_ids == {"start"}
    assert end.upstream_task_ids == {"extract"}
    assert isinstance(start.output, XComArg)
    with DAG("d2") as d2:
        bash = BashOperator(task_id="bash", bash_command="echo 5")
        total([bash.output])
    assert d2.get_task("total").upstream_task_ids == {"bash"}


def test_taskflow_callable_receives_context_names(make_context) -> None:  # type: ignore[no-untyped-def]
    @task
    def with_ctx(x: int, ds: str | None = None, ti: Any = None) -> str:
        return f"{x} {ds} {ti.task_id}"

    with DAG("d"):
        out = with_ctx(1)
    result, _ = _run(out.operator, make_context)
    assert result == "1 2024-01-15 with_ctx"


def test_get_current_context_inside_and_outside_a_task(make_context) -> None:  # type: ignore[no-untyped-def]
    @task
    def uses_current() -> str:
        return str(get_current_context()["run_id"])

    with DAG("d"):
        op = uses_current().operator
    ctx = make_context(op, run_id="manual__x")
    with set_current_context(ctx):
        assert op.execute(ctx) == "manual__x"
    with pytest.raises(SlipstreamError, match="outside of a running task"):
        get_current_context()


def test_templates_dict_is_rendered_and_passed_to_a_taskflow_function(make_context) -> None:  # type: ignore[no-untyped-def]
    with DAG("templates_dict_dag", schedule=None) as dag:

        @task(templates_dict={"day": "{{ ds }}"})
        def show(templates_dict=None):  # type: ignore[no-untyped-def]
            return templates_dict["day"]

        show()
    op = dag.get_task("show")
    context = make_context(op)
    op.render_template_fields(context)
    assert op.execute(context) == context["ds"]
