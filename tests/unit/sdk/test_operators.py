"""Operator arguments, BashOperator, PythonOperator and EmptyOperator, run for real."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from slipstream import DAG, TriggerRule
from slipstream.dagbag import import_dag_file
from slipstream.errors import DagDefinitionError, SlipstreamError, TemplateError
from slipstream.exceptions import AirflowSkipException
from slipstream.operators import BaseOperator, BashOperator, EmptyOperator, PythonOperator


def _noop() -> None:
    return None


# -- operator arguments -----------------------------------------------------------------


def test_all_operator_arguments_are_kept() -> None:
    def cb(context: Any) -> None: ...

    with DAG("d"):
        t = EmptyOperator(
            task_id="t",
            retries=2,
            retry_delay=timedelta(seconds=30),
            retry_exponential_backoff=True,
            max_retry_delay=timedelta(minutes=10),
            execution_timeout=timedelta(minutes=5),
            priority_weight=7,
            weight_rule="absolute",
            pool="my_pool",
            pool_slots=2,
            queue="fast",
            trigger_rule="all_done",
            depends_on_past=True,
            params={"p": 1},
            doc_md="docs",
            on_success_callback=cb,
            on_failure_callback=cb,
            on_retry_callback=cb,
            on_execute_callback=cb,
        )
    assert t.retries == 2
    assert t.retry_delay == timedelta(seconds=30)
    assert t.retry_exponential_backoff is True
    assert t.max_retry_delay == timedelta(minutes=10)
    assert t.execution_timeout == timedelta(minutes=5)
    assert (t.priority_weight, t.weight_rule) == (7, "absolute")
    assert (t.pool, t.pool_slots, t.queue) == ("my_pool", 2, "fast")
    assert t.trigger_rule is TriggerRule.ALL_DONE
    assert t.depends_on_past is True
    assert t.params["p"] == 1
    assert t.doc_md == "docs"
    assert t.on_success_callback is cb and t.on_failure_callback is cb
    assert t.on_retry_callback is cb and t.on_execute_callback is cb


def test_operator_defaults_match_airflow() -> None:
    t = EmptyOperator(task_id="t")
    assert t.retries == 0
    assert t.retry_delay == timedelta(seconds=300)
    assert t.trigger_rule == TriggerRule.ALL_SUCCESS
    assert (t.pool, t.pool_slots, t.priority_weight, t.weight_rule) == (
        "default_pool",
        1,
        1,
        "downstream",
    )
    assert t.depends_on_past is False
    assert t.execution_timeout is None


def test_seconds_are_accepted_for_durations() -> None:
    t = EmptyOperator(task_id="t", retry_delay=2.5, execution_timeout=60)
    assert t.retry_delay == timedelta(seconds=2.5)
    assert t.execution_timeout == timedelta(minutes=1)


def test_wait_for_downstream_implies_depends_on_past() -> None:
    assert EmptyOperator(task_id="t", wait_for_downstream=True).depends_on_past is True


def test_unknown_kwargs_are_named() -> None:
    with pytest.raises(DagDefinitionError) as info:
        BashOperator(task_id="t", bash_command="true", retires=3, colour="red")  # type: ignore[call-arg]
    message = str(info.value)
    assert "colour" in message and "retires" in message
    assert "BashOperator" in message and "task_id: t" in message


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retries": True}, "retries"),
        ({"retry_delay": -5}, "retry_delay"),
        ({"retry_delay": "5m"}, "retry_delay"),
        ({"execution_timeout": timedelta(seconds=-1)}, "execution_timeout"),
        ({"max_retry_delay": "x"}, "max_retry_delay"),
        ({"priority_weight": "high"}, "priority_weight"),
        ({"weight_rule": "sideways"}, "weight_rule"),
        ({"pool_slots": 0}, "pool_slots"),
        ({"pool": "bad pool"}, "pool"),
        ({"trigger_rule": "all_sucess"}, "all_sucess"),
    ],
)
def test_bad_argument_values_are_clear_errors(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DagDefinitionError, match=fragment):
        EmptyOperator(task_id="t", **kwargs)


def test_unknown_trigger_rule_lists_valid_rules() -> None:
    with pytest.raises(DagDefinitionError, match="none_failed_min_one_success"):
        EmptyOperator(task_id="t", trigger_rule="sometimes")


@pytest.mark.parametrize("bad", ["with space", "a/b", "", "é!", "x" * 251])
def test_bad_task_id_is_refused(bad: str) -> None:
    with pytest.raises(DagDefinitionError, match="task_id"):
        EmptyOperator(task_id=bad)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_every_trigger_rule_is_accepted(rule: TriggerRule) -> None:
    by_enum = EmptyOperator(task_id="a", trigger_rule=rule)
    by_name = EmptyOperator(task_id="b", trigger_rule=rule.value)
    assert by_enum.trigger_rule is rule
    assert by_name.trigger_rule is rule


def test_base_operator_execute_is_abstract(make_context) -> None:  # type: ignore[no-untyped-def]
    with DAG("d"):
        t = BaseOperator(task_id="t")
    with pytest.raises(NotImplementedError):
        t.execute(make_context(t))


def test_custom_operator_with_template_fields(make_context) -> None:  # type: ignore[no-untyped-def]
    class Hello(BaseOperator):
        template_fields = ("greeting",)

        def __init__(self, *, greeting: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.greeting = greeting

        def execute(self, context: Any) -> str:
            return self.greeting

    with DAG("d"):
        t = Hello(task_id="t", greeting="hi {{ ds }}")
    ctx = make_context(t)
    t.render_template_fields(ctx)
    assert t.execute(ctx) == "hi 2024-01-15"


def test_empty_operator_returns_none(make_context) -> None:  # type: ignore[no-untyped-def]
    with DAG("d"):
        t = EmptyOperator(task_id="t")
    assert t.execute(make_context(t)) is None


# -- BashOperator -----------------------------------------------------------------------


def _bash(make_context, **kwargs: Any) -> tuple[BashOperator, dict[str, Any]]:  # type: ignore[no-untyped-def]
    dag = kwargs.pop("dag", None) or DAG("bash_dag")
    op = BashOperator(task_id="b", dag=dag, **kwargs)
    ctx = make_context(op)
    op.render_template_fields(ctx)
    return op, ctx


def test_bash_returns_last_line(make_context) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(make_context, bash_command="echo first; echo second; echo last")
    assert op.execute(ctx) == "last"


def test_bash_renders_templates(make_context) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(make_context, bash_command="echo {{ ds }} {{ task.task_id }}")
    assert op.bash_command == "echo 2024-01-15 b"
    assert op.execute(ctx) == "2024-01-15 b"


def test_bash_env_replaces_environment(make_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OUTER_VAR", "outer")
    op, ctx = _bash(
        make_context,
        bash_command='echo "${MY_VAR}-${OUTER_VAR:-unset}"',
        env={"MY_VAR": "{{ ds_nodash }}"},
    )
    assert op.execute(ctx) == "20240115-unset"


def test_bash_append_env_keeps_environment(make_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OUTER_VAR", "outer")
    op, ctx = _bash(
        make_context,
        bash_command='echo "${MY_VAR}-${OUTER_VAR:-unset}"',
        env={"MY_VAR": "mine"},
        append_env=True,
    )
    assert op.execute(ctx) == "mine-outer"


def test_bash_without_env_inherits_environment(make_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OUTER_VAR", "outer")
    op, ctx = _bash(make_context, bash_command="echo $OUTER_VAR")
    assert op.execute(ctx) == "outer"


def test_bash_exports_context_variables(make_context) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(
        make_context, bash_command="echo $SLIPSTREAM_CTX_DAG_ID/$SLIPSTREAM_CTX_TASK_ID"
    )
    assert op.execute(ctx) == "bash_dag/b"


def test_bash_cwd(make_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(make_context, bash_command="pwd", cwd=str(tmp_path))
    assert os.path.realpath(op.execute(ctx)) == os.path.realpath(tmp_path)


def test_bash_missing_cwd_is_an_error(make_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(make_context, bash_command="pwd", cwd=str(tmp_path / "missing"))
    with pytest.raises(SlipstreamError, match="missing"):
        op.execute(ctx)


def test_bash_exit_99_skips(make_context) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(make_context, bash_command="exit 99")
    with pytest.raises(AirflowSkipException):
        op.execute(ctx)


def test_bash_custom_skip_exit_code(make_context) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(make_context, bash_command="exit 3", skip_on_exit_code=[3, 4])
    with pytest.raises(AirflowSkipException):
        op.execute(ctx)
    op2 = BashOperator(task_id="b2", dag=op.dag, bash_command="exit 99", skip_on_exit_code=None)
    with pytest.raises(SlipstreamError, match="99"):
        op2.execute(ctx)


@pytest.mark.parametrize("code", [1, 2, 127])
def test_bash_nonzero_exit_fails(make_context, code: int) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(make_context, bash_command=f"echo partial; exit {code}")
    with pytest.raises(SlipstreamError, match=f"exit code {code}"):
        op.execute(ctx)


def test_bash_failure_is_not_a_skip(make_context) -> None:  # type: ignore[no-untyped-def]
    op, ctx = _bash(make_context, bash_command="false")
    with pytest.raises(Exception) as info:
        op.execute(ctx)
    assert not isinstance(info.value, AirflowSkipException)


def test_bash_script_file_from_template_searchpath(make_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "run.sh").write_text('echo "day {{ ds }} for {{ params.who }}"\n')
    dag = DAG("d", template_searchpath=str(tmp_path), params={"who": "ada"})
    op, ctx = _bash(make_context, bash_command="run.sh", dag=dag)
    assert op.bash_command == 'echo "day 2024-01-15 for ada"\n'
    assert op.execute(ctx) == "day 2024-01-15 for ada"


def test_bash_script_file_next_to_dag_file(make_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "dags"
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "hello.sh").write_text("echo hello {{ ds_nodash }}\n")
    (folder / "my_dag.py").write_text(
        "from slipstream import DAG\n"
        "from slipstream.operators import BashOperator\n"
        "with DAG('file_dag') as dag:\n"
        "    BashOperator(task_id='hello', bash_command='scripts/hello.sh')\n"
    )
    (imported,) = import_dag_file(folder / "my_dag.py").dags
    op = imported.get_task("hello")
    ctx = make_context(op)
    op.render_template_fields(ctx)
    assert op.execute(ctx) == "hello 20240115"


def test_bash_missing_script_file_is_a_template_error(make_context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dag = DAG("d", template_searchpath=str(tmp_path))
    op = BashOperator(task_id="b", dag=dag, bash_command="nope.sh")
    with pytest.raises(TemplateError, match=r"nope\.sh"):
        op.render_template_fields(make_context(op))


def test_bash_command_with_trailing_space_is_not_a_template_file(
    make_context, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # Airflow's documented way to run a script directly: a space after ".sh".
    script = tmp_path / "direct.sh"
    script.write_text("echo '{{ not rendered }}'\n")
    script.chmod(0o755)
    dag = DAG("d", template_searchpath=str(tmp_path))
    op, ctx = _bash(make_context, bash_command=f"{script} ", dag=dag)
    assert op.execute(ctx) == "{{ not rendered }}"


# -- PythonOperator ---------------------------------------------------------------------


def test_python_op_args_and_kwargs_are_rendered(make_context) -> None:  # type: ignore[no-untyped-def]
    def f(a: str, b: int, *, c: str) -> str:
        return f"{a}|{b}|{c}"

    with DAG("d", params={"who": "ada"}):
        op = PythonOperator(
            task_id="p",
            python_callable=f,
            op_args=["{{ ds }}", 2],
            op_kwargs={"c": "{{ params.who }}"},
        )
    ctx = make_context(op)
    op.render_template_fields(ctx)
    assert op.op_args == ["2024-01-15", 2]
    assert op.op_kwargs == {"c": "ada"}
    assert op.execute(ctx) == "2024-01-15|2|ada"


def test_python_templates_dict_is_rendered_and_in_context(make_context) -> None:  # type: ignore[no-untyped-def]
    def f(templates_dict: dict[str, Any]) -> Any:
        return templates_dict["day"]

    with DAG("d"):
        op = PythonOperator(
            task_id="p", python_callable=f, templates_dict={"day": "{{ ds_nodash }}"}
        )
    ctx = make_context(op)
    op.render_template_fields(ctx)
    assert op.execute(ctx) == "20240115"


def test_python_callable_gets_the_context_names_it_asks_for(make_context) -> None:  # type: ignore[no-untyped-def]
    def f(x: int, ds: str, ti: Any, params: dict[str, Any]) -> list[Any]:
        return [x, ds, ti.task_id, params]

    with DAG("d", params={"n": 1}):
        op = PythonOperator(task_id="p", python_callable=f, op_kwargs={"x": 5})
    assert op.execute(make_context(op)) == [5, "2024-01-15", "p", {"n": 1}]


def test_python_callable_with_var_kwargs_gets_the_whole_context(make_context) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, Any] = {}

    def f(**kwargs: Any) -> None:
        seen.update(kwargs)

    with DAG("d"):
        op = PythonOperator(task_id="p", python_callable=f, op_kwargs={"extra": 1})
    op.execute(make_context(op))
    for key in ("ds", "ti", "dag", "task", "run_id", "logical_date", "params", "extra"):
        assert key in seen, key
    assert seen["extra"] == 1


def test_python_callable_without_context_parameters_gets_no_context(make_context) -> None:  # type: ignore[no-untyped-def]
    def f(a: int, b: int = 0) -> int:
        return a + b

    with DAG("d"):
        op = PythonOperator(task_id="p", python_callable=f, op_args=[1])
        op0 = PythonOperator(task_id="p0", python_callable=lambda: "ok")
    assert op.execute(make_context(op)) == 1
    assert op0.execute(make_context(op0)) == "ok"


def test_python_op_kwargs_win_over_context_names(make_context) -> None:  # type: ignore[no-untyped-def]
    def f(ds: str) -> str:
        return ds

    with DAG("d"):
        by_kw = PythonOperator(task_id="kw", python_callable=f, op_kwargs={"ds": "mine"})
        by_pos = PythonOperator(task_id="pos", python_callable=f, op_args=["positional"])
    assert by_kw.execute(make_context(by_kw)) == "mine"
    assert by_pos.execute(make_context(by_pos)) == "positional"


def test_python_callable_must_be_callable() -> None:
    with pytest.raises(DagDefinitionError, match="callable"):
        PythonOperator(task_id="p", python_callable="not callable")  # type: ignore[arg-type]


def test_python_callable_exception_propagates(make_context) -> None:  # type: ignore[no-untyped-def]
    def boom() -> None:
        raise ValueError("boom")

    with DAG("d"):
        op = PythonOperator(task_id="p", python_callable=boom)
    with pytest.raises(ValueError, match="boom"):
        op.execute(make_context(op))


def test_python_skip_exception_from_callable(make_context) -> None:  # type: ignore[no-untyped-def]
    def skip() -> None:
        raise AirflowSkipException("not today")

    with DAG("d"):
        op = PythonOperator(task_id="p", python_callable=skip)
    with pytest.raises(AirflowSkipException, match="not today"):
        op.execute(make_context(op))
