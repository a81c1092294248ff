"""Branch and short-circuit operators, their TaskFlow forms and ``@task.bash``, run for real.

A task only says which tasks to skip (``ti.skip_task_ids``); the runner applies that, so
these tests check the list, the return value (the XCom) and the errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from slipstream import DAG, TaskGroup, task
from slipstream.errors import BranchError
from slipstream.exceptions import AirflowSkipException
from slipstream.operators import (
    BaseBranchOperator,
    BaseOperator,
    BranchPythonOperator,
    EmptyOperator,
    ShortCircuitOperator,
)
from slipstream.sdk.context import Context, DagRunInfo
from slipstream.sdk.xcom_arg import XComArg
from slipstream.serialization import serialize_dag
from slipstream.states import TaskInstanceState
from slipstream.worker.execution import TryOutcome, TryRequest, execute_task

LOGICAL_DATE = datetime(2024, 1, 15, 6, 30, tzinfo=UTC)  # as in conftest.make_context
MakeContext = Callable[..., Context]


def run(task_: BaseOperator | XComArg, make_context: MakeContext, **kwargs: Any) -> tuple[Any, Any]:
    """Render and execute one task as the worker does; (return value, its task instance)."""
    op = task_.operator if isinstance(task_, XComArg) else task_
    context = make_context(op, **kwargs)
    op.render_template_fields(context)
    return op.execute(context), context["ti"]


def branch_dag(python_callable: Any, **kwargs: Any) -> DAG:
    """branch >> [a, b, c]; a >> a2; c >> join; branch >> join."""
    with DAG("branchy") as dag:
        branch = BranchPythonOperator(task_id="branch", python_callable=python_callable, **kwargs)
        a, a2, b, c, join = (EmptyOperator(task_id=t) for t in ("a", "a2", "b", "c", "join"))
        branch >> [a, b, c, join]
        a >> a2
        c >> join
    return dag


@pytest.mark.parametrize(
    ("returned", "skipped"),
    [
        ("a", ["b", "c", "join"]),
        (["a", "b"], ["c", "join"]),
        ("c", ["a", "b"]),  # join is downstream of c, so it is not skipped
        ("join", ["a", "b", "c"]),
        (None, ["a", "b", "c", "join"]),
        ([], ["a", "b", "c", "join"]),
    ],
)
def test_branch_python_operator_skips_what_it_did_not_choose(
    make_context: MakeContext, returned: Any, skipped: list[str]
) -> None:
    dag = branch_dag(lambda: returned)
    result, ti = run(dag.get_task("branch"), make_context)
    assert result == returned  # the choice is the XCom, as in Airflow
    assert ti.skip_task_ids == skipped


def test_branch_callable_gets_context_and_op_kwargs(make_context: MakeContext) -> None:
    def choose(ds: str, limit: int) -> str:
        return "a" if ds == "2024-01-15" and limit == 3 else "b"

    dag = branch_dag(choose, op_kwargs={"limit": 3})
    result, ti = run(dag.get_task("branch"), make_context)
    assert result == "a"
    assert "b" in ti.skip_task_ids


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            "nope",
            "branch task 'branch' chose 'nope', not a task of the DAG; its direct "
            "downstream tasks are 'a', 'b', 'c', 'join'",
        ),
        ("a2", "chose 'a2', not directly downstream of it"),
        (["a", 3], "returned 3, which is not a task id"),
        (42, "must return a task id, a list of task ids or None, not int"),
    ],
)
def test_branch_to_something_it_cannot_follow_fails_clearly(
    make_context: MakeContext, returned: Any, message: str
) -> None:
    dag = branch_dag(lambda: returned)
    with pytest.raises(BranchError, match=message):
        run(dag.get_task("branch"), make_context)


def test_base_branch_operator_subclass(make_context: MakeContext) -> None:
    class EvenOdd(BaseBranchOperator):
        def choose_branch(self, context: Context) -> Iterable[str]:
            return ("even",) if context["logical_date"].day % 2 == 0 else ("odd",)

    with DAG("d") as dag:
        EvenOdd(task_id="pick") >> [EmptyOperator(task_id="even"), EmptyOperator(task_id="odd")]
    result, ti = run(dag.get_task("pick"), make_context)
    assert LOGICAL_DATE.day == 15
    assert result == ("odd",)
    assert ti.skip_task_ids == ["even"]


def test_base_branch_operator_must_choose(make_context: MakeContext) -> None:
    with DAG("d") as dag:
        BaseBranchOperator(task_id="pick")
    with pytest.raises(NotImplementedError, match="choose_branch"):
        run(dag.get_task("pick"), make_context)


# -- short circuit ------------------------------------------------------------------------


def short_circuit_dag(condition: Any, **kwargs: Any) -> DAG:
    """check >> [a, b]; a >> a2 >> a3."""
    with DAG("sc") as dag:
        check = ShortCircuitOperator(task_id="check", python_callable=lambda: condition, **kwargs)
        a, a2, a3, b = (EmptyOperator(task_id=t) for t in ("a", "a2", "a3", "b"))
        check >> [a, b]
        a >> a2 >> a3
    return dag


@pytest.mark.parametrize("condition", [True, 1, "yes", [0]])
def test_short_circuit_truthy_skips_nothing(make_context: MakeContext, condition: Any) -> None:
    result, ti = run(short_circuit_dag(condition).get_task("check"), make_context)
    assert result == condition
    assert ti.skip_task_ids == []


@pytest.mark.parametrize("condition", [False, 0, "", None, []])
def test_short_circuit_falsy_skips_everything_downstream(
    make_context: MakeContext, condition: Any
) -> None:
    result, ti = run(short_circuit_dag(condition).get_task("check"), make_context)
    assert result is None  # no XCom, as in Airflow
    assert ti.skip_task_ids == ["a", "a2", "a3", "b"]


def test_short_circuit_respecting_trigger_rules_skips_only_direct_downstream(
    make_context: MakeContext,
) -> None:
    dag = short_circuit_dag(False, ignore_downstream_trigger_rules=False)
    check = dag.get_task("check")
    assert isinstance(check, ShortCircuitOperator)
    assert check.ignore_downstream_trigger_rules is False
    _, ti = run(check, make_context)
    assert ti.skip_task_ids == ["a", "b"]


def test_short_circuit_default_comes_from_default_args() -> None:
    with DAG("d", default_args={"ignore_downstream_trigger_rules": False}):
        check = ShortCircuitOperator(task_id="check", python_callable=bool)
    assert check.ignore_downstream_trigger_rules is False


# -- TaskFlow -----------------------------------------------------------------------------


def test_task_branch_takes_xcom_args_and_skips(make_context: MakeContext) -> None:
    with DAG("tf") as dag:

        @task
        def size() -> int:
            return 7

        @task.branch
        def route(n: int) -> str:
            return "big" if n > 5 else "small"

        routed = route(size())
        routed >> [EmptyOperator(task_id="big"), EmptyOperator(task_id="small")]
    op = dag.get_task("route")
    assert op.upstream_task_ids == {"size"}
    result, ti = run(op, make_context, xcoms={("size", "return_value"): 7})
    assert result == "big"
    assert ti.skip_task_ids == ["small"]


def test_task_branch_with_arguments_and_an_unknown_id(make_context: MakeContext) -> None:
    with DAG("tf") as dag:

        @task.branch(task_id="pick", retries=2)
        def route() -> str:
            return "elsewhere"

        route() >> EmptyOperator(task_id="here")
    op = dag.get_task("pick")
    assert op.retries == 2
    with pytest.raises(BranchError, match="chose 'elsewhere', not a task of the DAG"):
        run(op, make_context)


@pytest.mark.parametrize(("ignore", "skipped"), [(True, ["a", "b"]), (False, ["a"])])
def test_task_short_circuit(make_context: MakeContext, ignore: bool, skipped: list[str]) -> None:
    with DAG("tf") as dag:

        @task.short_circuit(ignore_downstream_trigger_rules=ignore)
        def go(flag: bool) -> bool:
            return flag

        go(False) >> EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
        go.override(task_id="yes")(True) >> EmptyOperator(task_id="c")
    result, ti = run(dag.get_task("go"), make_context)
    assert (result, ti.skip_task_ids) == (None, skipped)
    result, ti = run(dag.get_task("yes"), make_context)
    assert (result, ti.skip_task_ids) == (True, [])


def test_task_bash_runs_the_command_the_function_returns(make_context: MakeContext) -> None:
    with DAG("tf") as dag:

        @task.bash(env={"WHO": "world"})
        def greet(greeting: str) -> str:
            return f"echo {greeting} $WHO; echo 'on {{{{ ds }}}}'"

        greet("hello")
    result, ti = run(dag.get_task("greet"), make_context)
    assert result == "on 2024-01-15"  # the last line, as BashOperator
    assert ti.pushed == {}  # the runner pushes the return value, not the operator


def test_task_bash_skips_on_exit_code_99(make_context: MakeContext) -> None:
    with DAG("tf") as dag:

        @task.bash
        def nothing_to_do() -> str:
            return "exit 99"

        nothing_to_do()
    with pytest.raises(AirflowSkipException):
        run(dag.get_task("nothing_to_do"), make_context)


@pytest.mark.parametrize("returned", ["", "   ", None, 3])
def test_task_bash_must_return_a_command(make_context: MakeContext, returned: Any) -> None:
    with DAG("tf") as dag:

        @task.bash
        def broken() -> Any:
            return returned

        broken()
    with pytest.raises(TypeError, match="must return the bash command as a non-empty string"):
        run(dag.get_task("broken"), make_context)


def test_task_bash_ignores_multiple_outputs() -> None:
    with DAG("tf") as dag:

        @task.bash(multiple_outputs=True)
        def cmd() -> dict[str, str]:
            return {"not": "a command"}

        cmd()
    assert dag.get_task("cmd").multiple_outputs is False


def test_serialized_operator_names() -> None:
    with DAG("names") as dag:
        BranchPythonOperator(task_id="b", python_callable=lambda: None)
        ShortCircuitOperator(task_id="s", python_callable=lambda: True)

        @task.branch
        def tb() -> None: ...

        @task.short_circuit
        def ts() -> bool:
            return True

        @task.bash
        def tbash() -> str:
            return "true"

        tb(), ts(), tbash()
    operators = {t["task_id"]: t["operator"] for t in serialize_dag(dag)["tasks"]}
    assert operators == {
        "b": "BranchPythonOperator",
        "s": "ShortCircuitOperator",
        "tb": "@task.branch",
        "ts": "@task.short_circuit",
        "tbash": "@task.bash",
    }


# -- through execute_task: the skips travel in the try's outcome ---------------------------


def _execute(op: BaseOperator, max_tries: int = 0) -> TryOutcome:
    dag_run = DagRunInfo("d", "r", "manual", LOGICAL_DATE, LOGICAL_DATE, LOGICAL_DATE)
    return execute_task(TryRequest(op.dag, op, dag_run, {}, 1, max_tries), None)


def test_a_successful_try_carries_its_skips() -> None:
    op = branch_dag(lambda: "b").get_task("branch")
    outcome = _execute(op)
    assert outcome.state == TaskInstanceState.SUCCESS
    assert outcome.skip_task_ids == ["a", "c", "join"]
    assert outcome.xcoms == {"return_value": '"b"'}
    assert TryOutcome.from_json(outcome.to_json()) == outcome


def test_a_failed_try_skips_nothing() -> None:
    class ChoosesThenFails(BranchPythonOperator):
        def post_execute(self, context: Context, result: Any = None) -> None:
            raise RuntimeError("boom after choosing")

    with DAG("d"):
        op = ChoosesThenFails(task_id="branch", python_callable=lambda: "a")
        op >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]
    outcome = _execute(op, max_tries=1)
    assert outcome.state == TaskInstanceState.UP_FOR_RETRY
    assert outcome.skip_task_ids == []
    failed = _execute(branch_dag(lambda: "zzz").get_task("branch"))
    assert failed.state == TaskInstanceState.FAILED
    assert failed.error is not None
    assert failed.error.startswith("BranchError: branch task 'branch' chose 'zzz'")
    assert failed.skip_task_ids == []


def test_outcome_json_without_skips_still_reads() -> None:
    old = '{"state": "success", "error": null, "xcoms": {}}'
    assert TryOutcome.from_json(old).skip_task_ids == []


def test_a_branch_can_choose_a_task_group(make_context: MakeContext) -> None:
    """A group's id stands for its root tasks (Airflow's behaviour)."""
    with DAG("groups") as dag:
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "fast")
        with TaskGroup("fast") as fast:
            first, second = EmptyOperator(task_id="first"), EmptyOperator(task_id="second")
            first >> second
        with TaskGroup("slow") as slow:
            EmptyOperator(task_id="only")
        pick >> [fast, slow]
    result, ti = run(dag.get_task("pick"), make_context)
    assert result == "fast"
    assert ti.skip_task_ids == ["slow.only"]
