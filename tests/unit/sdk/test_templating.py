"""The template context and Jinja rendering of template_fields, as in Airflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from slipstream import DAG
from slipstream.errors import TemplateError, VariableNotFound
from slipstream.operators import PythonOperator
from slipstream.sdk.macros import build_macros, ds_add, ds_format


def _render(make_context: Any, template: Any, dag: DAG | None = None, **ctx_kwargs: Any) -> Any:
    """Render ``template`` as the templates_dict value of a real PythonOperator."""
    dag = dag or DAG("tmpl_dag", params={"who": "ada", "n": 3})
    task_id = "t" if not dag.has_task("t") else f"t{len(dag.tasks)}"
    op = PythonOperator(
        task_id=task_id, python_callable=lambda: None, templates_dict={"v": template}, dag=dag
    )
    op.render_template_fields(make_context(op, **ctx_kwargs))
    assert op.templates_dict is not None
    return op.templates_dict["v"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ds }}", "2024-01-15"),
        ("{{ ds_nodash }}", "20240115"),
        ("{{ ts }}", "2024-01-15T06:30:00+00:00"),
        ("{{ ts_nodash }}", "20240115T063000"),
        ("{{ ts_nodash_with_tz }}", "20240115T063000+0000"),
        ("{{ logical_date.year }}-{{ logical_date.hour }}", "2024-6"),
        ("{{ data_interval_start | ds }}", "2024-01-14"),
        ("{{ data_interval_end.isoformat() }}", "2024-01-15T06:30:00+00:00"),
        ("{{ run_id }}", "scheduled__2024-01-15T06:30:00+00:00"),
        ("{{ dag.dag_id }}", "tmpl_dag"),
        ("{{ task.task_id }}", "t"),
        ("{{ ti.task_id }}/{{ ti.try_number }}", "t/1"),
        ("{{ task_instance.dag_id }}", "tmpl_dag"),
        ("{{ task_instance_key_str }}", "tmpl_dag__t__20240115"),
        ("{{ params.who }} {{ params['n'] + 1 }}", "ada 4"),
        ("{{ dag_run.run_id == run_id }}", "True"),
        ("{{ dag_run.logical_date | ds_nodash }}", "20240115"),
        ("{{ macros.ds_add(ds, 5) }}", "2024-01-20"),
        ("{{ macros.ds_add(ds, -15) }}", "2023-12-31"),
        ("{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%y') }}", "15/01/24"),
        ("{{ (logical_date + macros.timedelta(days=1)) | ds }}", "2024-01-16"),
        ("{{ macros.datetime(2020, 2, 3).strftime('%Y') }}", "2020"),
    ],
)
def test_context_names(make_context: Any, template: str, expected: str) -> None:
    assert _render(make_context, template) == expected


def test_conf_and_dag_run_conf(make_context: Any) -> None:
    out = _render(make_context, "{{ conf.x }} {{ dag_run.conf['x'] }}", conf={"x": "from_conf"})
    assert out == "from_conf from_conf"


def test_conf_overrides_params_in_context(make_context: Any) -> None:
    assert _render(make_context, "{{ params.who }}", conf={"who": "grace"}) == "grace"


def test_var_value_and_json_from_environment(
    make_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPSTREAM_VAR_FOO", "bar")
    monkeypatch.setenv("SLIPSTREAM_VAR_CONFIG", '{"limit": 7, "names": ["a", "b"]}')
    out = _render(
        make_context,
        "{{ var.value.foo }} {{ var.json.config.limit }} {{ var.json.config['names'][1] }}",
    )
    assert out == "bar 7 b"
    assert _render(make_context, "{{ var.value.get('missing', 'dflt') }}") == "dflt"


def test_missing_variable_in_template_is_an_error(make_context: Any) -> None:
    with pytest.raises(VariableNotFound, match="missing"):
        _render(make_context, "{{ var.value.missing }}")


def test_conn_from_environment_uri(make_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPSTREAM_CONN_X", "postgres://user:p%40ss@db.example.com:5432/sales")
    out = _render(
        make_context,
        "{{ conn.x.conn_type }} {{ conn.x.host }} {{ conn.x.port }} {{ conn.x.login }} {{ conn.x.schema }}",
    )
    assert out == "postgres db.example.com 5432 user sales"
    assert _render(make_context, "{{ conn.x.password }}") == "p@ss"
    assert _render(make_context, "{{ conn.get('nope', 'none') }}") == "none"


def test_strict_undefined_is_a_template_error_naming_the_field(make_context: Any) -> None:
    with pytest.raises(TemplateError) as info:
        _render(make_context, "{{ no_such_name }}")
    assert "t.templates_dict" in str(info.value)
    assert "no_such_name" in str(info.value)
    with pytest.raises(TemplateError, match=r"t.templates_dict"):
        _render(make_context, "{{ params.nope }}")


def test_syntax_error_is_a_template_error(make_context: Any) -> None:
    with pytest.raises(TemplateError, match=r"syntax error in t.templates_dict"):
        _render(make_context, "{{ ds ")


def test_user_defined_macros_and_filters(make_context: Any) -> None:
    dag = DAG(
        "d",
        user_defined_macros={"env_name": "prod", "double": lambda x: x * 2},
        user_defined_filters={"shout": lambda s: s.upper() + "!"},
    )
    assert (
        _render(make_context, "{{ env_name }}-{{ double(21) }}-{{ 'hi' | shout }}", dag)
        == "prod-42-HI!"
    )


def test_render_template_as_native_obj(make_context: Any) -> None:
    native = DAG("native", render_template_as_native_obj=True, params={"n": 3})
    assert _render(make_context, "{{ [params.n, params.n * 2] }}", native) == [3, 6]
    assert _render(make_context, "{{ params.n + 1 }}", native) == 4
    # without it a template always renders to a string
    assert _render(make_context, "{{ [1, 2] }}", DAG("plain")) == "[1, 2]"


def test_nested_values_are_rendered_item_by_item(make_context: Any) -> None:
    value = {"a": ["{{ ds }}", 1, ("{{ ds_nodash }}", None)], "b": {"c": "{{ run_id }}"}}
    out = _render(make_context, value)
    assert out == {
        "a": ["2024-01-15", 1, ("20240115", None)],
        "b": {"c": "scheduled__2024-01-15T06:30:00+00:00"},
    }


def test_non_string_values_are_left_alone(make_context: Any) -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert _render(make_context, when) is when
    assert _render(make_context, 5) == 5


def test_rendering_keeps_trailing_newline(make_context: Any) -> None:
    assert _render(make_context, "{{ ds }}\n") == "2024-01-15\n"


def test_template_file_from_searchpath_in_python_operator(make_context: Any, tmp_path: Any) -> None:
    (tmp_path / "query.sql").write_text("SELECT * FROM t WHERE day = '{{ ds }}'")
    dag = DAG("d", template_searchpath=[str(tmp_path)])

    def f(templates_dict: dict[str, Any]) -> Any:
        return templates_dict["q"]

    op = PythonOperator(
        task_id="p",
        dag=dag,
        python_callable=f,
        templates_dict={"q": "query.sql"},
        templates_exts=[".sql"],
    )
    ctx = make_context(op)
    op.render_template_fields(ctx)
    assert op.execute(ctx) == "SELECT * FROM t WHERE day = '2024-01-15'"


def test_macros_functions() -> None:
    assert ds_add("2024-02-28", 1) == "2024-02-29"
    assert ds_add("2024-03-01", -1) == "2024-02-29"
    assert ds_add("2024-03-01", 0) == "2024-03-01"
    assert ds_format("2024-01-05", "%Y-%m-%d", "%m-%d-%y") == "01-05-24"
    macros = build_macros()
    assert macros.datetime is datetime
    assert macros.timedelta is timedelta
    assert macros.ds_add is ds_add


def test_templates_cannot_reach_dunder_attributes(make_context: Any) -> None:
    with pytest.raises(TemplateError, match="cannot render"):
        _render(make_context, "{{ ''.__class__.__mro__ }}")


def test_templates_may_read_private_attributes(make_context: Any) -> None:
    dag = DAG("private_attr_dag", schedule=None, user_defined_macros={"obj": _WithPrivate()})
    assert _render(make_context, "{{ obj._secret_sauce }}", dag=dag) == "ok"


class _WithPrivate:
    _secret_sauce = "ok"
