"""DAG arguments, the context manager, @dag, default_args and dependencies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from slipstream import DAG, Param, TriggerRule, chain, cross_downstream, dag, task
from slipstream.errors import (
    CycleError,
    DagDefinitionError,
    DuplicateTaskIdError,
    TaskNotFound,
)
from slipstream.operators import BashOperator, EmptyOperator, PythonOperator
from slipstream.sdk.dag import DagContext
from slipstream.timetables import (
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    NullTimetable,
    OnceTimetable,
)

START = datetime(2024, 1, 1, tzinfo=UTC)


def test_public_imports_have_airflow_names() -> None:
    import slipstream
    import slipstream.exceptions
    import slipstream.operators

    for name in ("DAG", "dag", "task", "chain", "Param", "Variable", "Connection", "TriggerRule"):
        assert hasattr(slipstream, name), name
    for name in ("BaseOperator", "BashOperator", "PythonOperator", "EmptyOperator"):
        assert hasattr(slipstream.operators, name), name
    from slipstream.errors import SlipstreamFailException, SlipstreamSkipException

    assert slipstream.exceptions.AirflowSkipException is SlipstreamSkipException
    assert slipstream.exceptions.AirflowFailException is SlipstreamFailException


# -- DAG arguments ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "has space", "semi;colon", "slash/x", "x" * 251, 42])
def test_bad_dag_id_is_refused(bad: object) -> None:
    with pytest.raises(DagDefinitionError, match="dag_id"):
        DAG(bad)  # type: ignore[arg-type]


def test_dag_id_allows_letters_digits_dash_dot_underscore() -> None:
    assert DAG("My-dag.v2_final").dag_id == "My-dag.v2_final"


def test_defaults_match_airflow() -> None:
    d = DAG("d")
    assert d.catchup is False
    assert d.schedule is None
    assert isinstance(d.timetable, NullTimetable)
    assert d.start_date is None
    assert d.params == {}
    assert d.tags == []
    assert d.max_active_runs is None and d.max_active_tasks is None


def test_all_documented_arguments_are_kept() -> None:
    d = DAG(
        "full",
        description="a description",
        schedule="0 6 * * *",
        start_date=START,
        end_date=START + timedelta(days=30),
        catchup=True,
        params={"n": 1},
        max_active_runs=2,
        max_active_tasks=4,
        dagrun_timeout=timedelta(hours=1),
        tags=["b", "a"],
        doc_md="# Title",
        template_searchpath="/opt/templates",
        user_defined_macros={"answer": 42},
    )
    assert d.description == "a description"
    assert d.catchup is True
    assert d.end_date == START + timedelta(days=30)
    assert d.params["n"] == 1
    assert (d.max_active_runs, d.max_active_tasks) == (2, 4)
    assert d.dagrun_timeout == timedelta(hours=1)
    assert sorted(d.tags) == ["a", "b"]
    assert d.doc_md == "# Title"
    assert d.template_searchpath == ["/opt/templates"]
    assert d.user_defined_macros == {"answer": 42}
    assert isinstance(d.timetable, CronDataIntervalTimetable)
    assert d.timetable.summary == "0 6 * * *"


@pytest.mark.parametrize(
    ("schedule", "kind"),
    [
        ("@once", OnceTimetable),
        ("@hourly", CronDataIntervalTimetable),
        ("@daily", CronDataIntervalTimetable),
        ("@weekly", CronDataIntervalTimetable),
        ("@monthly", CronDataIntervalTimetable),
        ("@yearly", CronDataIntervalTimetable),
        ("*/5 * * * *", CronDataIntervalTimetable),
        (timedelta(hours=6), DeltaDataIntervalTimetable),
        (None, NullTimetable),
    ],
)
def test_schedule_kinds(schedule: object, kind: type) -> None:
    d = DAG("d", schedule=schedule, start_date=START)  # type: ignore[arg-type]
    assert isinstance(d.timetable, kind)
    assert d.schedule == schedule


@pytest.mark.parametrize("bad", ["not a cron", "@fortnightly", "61 * * * *", 5])
def test_bad_schedule_is_a_definition_error(bad: object) -> None:
    with pytest.raises(DagDefinitionError):
        DAG("d", schedule=bad, start_date=START)  # type: ignore[arg-type]


def test_periodic_schedule_needs_start_date() -> None:
    with pytest.raises(DagDefinitionError, match="start_date"):
        DAG("d", schedule="@daily")
    DAG("d2", schedule="@once")  # not periodic: fine without


def test_naive_start_date_becomes_utc() -> None:
    d = DAG("d", schedule="@daily", start_date=datetime(2024, 1, 1))
    assert d.start_date == START
    assert d.start_date is not None and d.start_date.utcoffset() == timedelta(0)


def test_start_date_from_default_args() -> None:
    d = DAG("d", schedule="@daily", default_args={"start_date": START})
    assert d.start_date == START


def test_end_date_before_start_date_is_refused() -> None:
    with pytest.raises(DagDefinitionError, match="end_date"):
        DAG("d", start_date=START, end_date=START - timedelta(days=1))


@pytest.mark.parametrize("name", ["max_active_runs", "max_active_tasks"])
@pytest.mark.parametrize("bad", [0, -1, "3"])
def test_concurrency_limits_must_be_positive(name: str, bad: object) -> None:
    with pytest.raises(DagDefinitionError, match=name):
        DAG("d", **{name: bad})  # type: ignore[arg-type]


def test_dagrun_timeout_must_be_a_timedelta() -> None:
    with pytest.raises(DagDefinitionError, match="dagrun_timeout"):
        DAG("d", dagrun_timeout=60)  # type: ignore[arg-type]


# -- context manager --------------------------------------------------------------------


def test_context_manager_adds_tasks_and_closes() -> None:
    with DAG("d") as d:
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
    assert d.task_ids == ["a", "b"]
    assert a.dag is d and b.dag_id == "d"
    assert DagContext.current() is None
    lone = EmptyOperator(task_id="lone")
    assert not lone.has_dag
    with pytest.raises(DagDefinitionError, match="not in a DAG"):
        _ = lone.dag


def test_nested_context_managers_use_innermost() -> None:
    with DAG("outer") as outer:
        with DAG("inner") as inner:
            EmptyOperator(task_id="i")
        EmptyOperator(task_id="o")
    assert inner.task_ids == ["i"]
    assert outer.task_ids == ["o"]


def test_dag_argument_without_context_manager() -> None:
    d = DAG("d")
    t = EmptyOperator(task_id="t", dag=d)
    assert d.get_task("t") is t
    with pytest.raises(TaskNotFound, match="nope"):
        d.get_task("nope")


def test_task_cannot_move_to_another_dag() -> None:
    d1, d2 = DAG("d1"), DAG("d2")
    t = EmptyOperator(task_id="t", dag=d1)
    with pytest.raises(DagDefinitionError, match="d2"):
        t.dag = d2


# -- default_args -----------------------------------------------------------------------


def test_default_args_fill_arguments_not_given() -> None:
    args = {"retries": 3, "retry_delay": timedelta(minutes=1), "owner": "data", "queue": "q"}
    with DAG("d", default_args=args):
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b", retries=0, queue="other")
    assert (a.retries, a.retry_delay, a.owner, a.queue) == (3, timedelta(minutes=1), "data", "q")
    # an explicit argument wins, even a falsy one
    assert (b.retries, b.queue, b.owner) == (0, "other", "data")


def test_default_args_reach_subclass_specific_arguments() -> None:
    with DAG("d", default_args={"env": {"A": "1"}, "op_kwargs": {"x": 1}, "retries": 2}):
        bash = BashOperator(task_id="bash", bash_command="echo hi")
        py = PythonOperator(task_id="py", python_callable=lambda x: x)
    assert bash.env == {"A": "1"}
    assert bash.retries == 2
    assert py.op_kwargs == {"x": 1}
    assert py.retries == 2


def test_default_args_reach_a_users_operator_subclass() -> None:
    class Greet(BashOperator):
        def __init__(self, *, name: str = "nobody", **kwargs: object) -> None:
            super().__init__(bash_command=f"echo {name}", **kwargs)  # type: ignore[arg-type]
            self.name = name

    with DAG("d", default_args={"name": "ada", "retries": 1}):
        g = Greet(task_id="g")
    assert g.name == "ada"
    assert g.bash_command == "echo ada"
    assert g.retries == 1


def test_task_default_args_override_dag_default_args() -> None:
    with DAG("d", default_args={"retries": 3, "pool": "p1"}):
        t = EmptyOperator(task_id="t", default_args={"retries": 5})
    assert t.retries == 5
    assert t.pool == "p1"


def test_default_args_with_explicit_dag_argument() -> None:
    d = DAG("d", default_args={"retries": 4})
    t = EmptyOperator(task_id="t", dag=d)
    assert t.retries == 4


def test_default_args_params_become_dag_params() -> None:
    d = DAG("d", default_args={"params": {"a": 1, "b": 2}}, params={"b": 3})
    assert dict(d.params) == {"a": 1, "b": 3}


# -- @dag -------------------------------------------------------------------------------


def test_dag_decorator_builds_dag_from_function() -> None:
    @dag(schedule="@daily", start_date=START, tags=["x"])
    def my_pipeline(limit: int = 10, name: str = "world") -> None:
        """Loads things.

        In detail.
        """
        EmptyOperator(task_id="start")

    d = my_pipeline()
    assert isinstance(d, DAG)
    assert d.dag_id == "my_pipeline"
    assert d.doc_md == "Loads things.\n\nIn detail."
    assert dict(d.params) == {"limit": 10, "name": "world"}
    assert d.task_ids == ["start"]
    assert d.tags == ["x"]
    assert DagContext.current() is None


def test_dag_decorator_call_arguments_override_param_defaults() -> None:
    @dag(dag_id="custom_id")
    def pipeline(limit: int = 10) -> None:
        EmptyOperator(task_id="t")

    d = pipeline(limit=3)
    assert d.dag_id == "custom_id"
    assert d.params["limit"] == 3


def test_dag_decorator_explicit_doc_md_wins() -> None:
    @dag(doc_md="explicit")
    def p() -> None:
        """Docstring."""

    assert p().doc_md == "explicit"


def test_dag_decorator_without_parentheses() -> None:
    @dag
    def bare() -> None:
        EmptyOperator(task_id="t")

    assert bare().dag_id == "bare"


def test_dag_decorator_param_is_passed_to_tasks_as_param_value(make_context) -> None:  # type: ignore[no-untyped-def]
    @dag
    def p(who: str = "ada") -> None:
        @task
        def hello(name: str) -> str:
            return f"hello {name}"

        hello(who)

    d = p()
    t = d.get_task("hello")
    ctx = make_context(t, conf={"who": "grace"})
    t.render_template_fields(ctx)
    assert t.execute(ctx) == "hello grace"


# -- dependencies -----------------------------------------------------------------------


def _tasks(d: DAG, *ids: str) -> list[EmptyOperator]:
    return [EmptyOperator(task_id=i, dag=d) for i in ids]


def test_bitshift_operators() -> None:
    d = DAG("d")
    a, b, c = _tasks(d, "a", "b", "c")
    assert (a >> b) is b
    c << b
    assert a.downstream_task_ids == {"b"}
    assert b.upstream_task_ids == {"a"} and b.downstream_task_ids == {"c"}
    assert c.upstream_task_ids == {"b"}
    assert [t.task_id for t in d.topological_sort()] == ["a", "b", "c"]
    assert [t.task_id for t in d.roots] == ["a"]
    assert [t.task_id for t in d.leaves] == ["c"]


def test_lists_on_both_sides() -> None:
    d = DAG("d")
    a, b, c, e, f = _tasks(d, "a", "b", "c", "e", "f")
    a >> [b, c] >> e
    [e] << f  # type: ignore[operator]
    [b, c] << f  # type: ignore[operator]
    assert a.downstream_task_ids == {"b", "c"}
    assert e.upstream_task_ids == {"b", "c", "f"}
    assert f.downstream_task_ids == {"b", "c", "e"}
    assert {t.task_id for t in b.upstream_list} == {"a", "f"}


def test_set_upstream_and_downstream_methods() -> None:
    d = DAG("d")
    a, b, c = _tasks(d, "a", "b", "c")
    a.set_downstream([b, c])
    c.set_upstream(b)
    assert a.downstream_task_ids == {"b", "c"}
    assert c.upstream_task_ids == {"a", "b"}


def test_linking_is_idempotent() -> None:
    d = DAG("d")
    a, b = _tasks(d, "a", "b")
    a >> b
    a >> b
    assert a.downstream_task_ids == {"b"}


def test_chain() -> None:
    d = DAG("d")
    a, b, c, e = _tasks(d, "a", "b", "c", "e")
    chain(a, [b, c], e)
    assert a.downstream_task_ids == {"b", "c"}
    assert e.upstream_task_ids == {"b", "c"}
    assert b.downstream_task_ids == {"e"}


def test_chain_links_adjacent_lists_pairwise() -> None:
    d = DAG("d")
    a1, a2, b1, b2 = _tasks(d, "a1", "a2", "b1", "b2")
    chain([a1, a2], [b1, b2])
    assert a1.downstream_task_ids == {"b1"}
    assert a2.downstream_task_ids == {"b2"}


def test_chain_refuses_lists_of_unequal_length() -> None:
    d = DAG("d")
    a, b, c = _tasks(d, "a", "b", "c")
    with pytest.raises(DagDefinitionError, match="different lengths"):
        chain([a, b], [c])
    assert not a.downstream_task_ids


def test_cross_downstream() -> None:
    d = DAG("d")
    a, b, x, y = _tasks(d, "a", "b", "x", "y")
    cross_downstream([a, b], [x, y])
    assert a.downstream_task_ids == {"x", "y"}
    assert b.downstream_task_ids == {"x", "y"}
    assert x.upstream_task_ids == {"a", "b"}


def test_cycle_is_refused_at_definition_naming_the_path() -> None:
    d = DAG("loop_dag")
    a, b, c = _tasks(d, "a", "b", "c")
    a >> b >> c
    with pytest.raises(CycleError) as info:
        c >> a
    message = str(info.value)
    assert "c -> a -> b -> c" in message
    assert "loop_dag" in message
    # the refused edge was not added
    assert not c.downstream_task_ids
    assert isinstance(info.value, DagDefinitionError)


def test_self_dependency_is_a_cycle() -> None:
    d = DAG("d")
    (a,) = _tasks(d, "a")
    with pytest.raises(CycleError, match="a -> a"):
        a >> a


def test_cycle_through_list_is_refused() -> None:
    d = DAG("d")
    a, b, c = _tasks(d, "a", "b", "c")
    a >> [b, c]
    with pytest.raises(CycleError, match="b -> a -> b"):
        [b] >> a  # type: ignore[operator]


def test_duplicate_task_id_names_it() -> None:
    with DAG("d"):
        EmptyOperator(task_id="extract")
        with pytest.raises(DuplicateTaskIdError, match="'extract'"):
            EmptyOperator(task_id="extract")


def test_task_without_dag_joins_the_dag_it_is_linked_to() -> None:
    d = DAG("d")
    (a,) = _tasks(d, "a")
    loose = EmptyOperator(task_id="loose")
    a >> loose
    assert loose.dag is d
    assert d.has_task("loose")


def test_tasks_of_different_dags_cannot_be_linked() -> None:
    (a,) = _tasks(DAG("d1"), "a")
    (b,) = _tasks(DAG("d2"), "b")
    with pytest.raises(DagDefinitionError, match="different DAGs"):
        a >> b


def test_two_tasks_without_dag_cannot_be_linked() -> None:
    with pytest.raises(DagDefinitionError, match="neither is in a DAG"):
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")


def test_dependency_on_something_else_is_refused() -> None:
    (a,) = _tasks(DAG("d"), "a")
    with pytest.raises(DagDefinitionError, match="cannot set a dependency"):
        a >> "b"


def test_trigger_rule_enum_has_the_eleven_airflow_names() -> None:
    assert {r.value for r in TriggerRule} == {
        "all_success",
        "all_failed",
        "all_done",
        "all_skipped",
        "one_success",
        "one_failed",
        "one_done",
        "none_failed",
        "none_failed_min_one_success",
        "none_skipped",
        "always",
    }


def test_dag_params_accept_param_objects() -> None:
    d = DAG("d", params={"n": Param(5, type="integer", minimum=1)})
    assert d.params["n"] == 5
    assert d.params.get_param("n").schema == {"type": "integer", "minimum": 1}
