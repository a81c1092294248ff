"""Params: defaults, JSON-schema validation, conf overrides, task params over DAG params."""

from __future__ import annotations

from datetime import datetime

import pytest

from slipstream import DAG, Param
from slipstream.errors import InvalidInputError
from slipstream.operators import EmptyOperator
from slipstream.sdk.param import ParamsDict


def test_param_default_and_schema() -> None:
    p = Param(5, type="integer", minimum=1, description="how many")
    assert p.value == 5
    assert p.description == "how many"
    assert p.resolve() == 5
    assert p.resolve(9) == 9
    assert p.dump() == {
        "default": 5,
        "has_default": True,
        "description": "how many",
        "schema": {"type": "integer", "minimum": 1},
    }


def test_schema_violation_names_the_param() -> None:
    params = ParamsDict({"limit": Param(5, type="integer", minimum=1)})
    with pytest.raises(InvalidInputError) as info:
        params.resolve({"limit": 0})
    assert "'limit'" in str(info.value)
    assert "minimum" in str(info.value) or "less than" in str(info.value)
    with pytest.raises(InvalidInputError, match="'limit'"):
        params.resolve({"limit": "five"})


def test_invalid_default_is_caught_at_resolve() -> None:
    params = ParamsDict({"mode": Param("bogus", enum=["full", "delta"])})
    with pytest.raises(InvalidInputError, match="'mode'"):
        params.resolve()
    assert params.resolve({"mode": "delta"}) == {"mode": "delta"}


def test_param_without_default_needs_a_value() -> None:
    params = ParamsDict({"target": Param(type="string")})
    with pytest.raises(InvalidInputError, match=r"'target'.*no default"):
        params.resolve()
    assert params.resolve({"target": "x"}) == {"target": "x"}
    assert params.get_param("target").has_value is False


def test_invalid_schema_itself_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="schema"):
        Param(1, type="not-a-type")


def test_conf_overrides_defaults_and_adds_keys() -> None:
    params = ParamsDict({"a": 1, "b": Param("x", type="string")})
    assert params.resolve() == {"a": 1, "b": "x"}
    assert params.resolve({"a": 2, "extra": True}) == {"a": 2, "b": "x", "extra": True}


def test_resolve_refuses_values_json_cannot_hold() -> None:
    params = ParamsDict({"when": datetime(2024, 1, 1)})
    with pytest.raises(InvalidInputError, match="JSON"):
        params.resolve()


def test_format_is_checked() -> None:
    params = ParamsDict({"day": Param("2024-01-01", type="string", format="date")})
    assert params.resolve()["day"] == "2024-01-01"
    with pytest.raises(InvalidInputError, match="'day'"):
        params.resolve({"day": "yesterday"})


def test_params_dict_behaves_like_a_dict_of_values() -> None:
    params = ParamsDict({"a": 1, "b": Param(2, type="integer")})
    assert dict(params) == {"a": 1, "b": 2}
    assert params["b"] == 2
    assert list(params.keys()) == ["a", "b"]
    assert dict(params.items()) == {"a": 1, "b": 2}
    assert len(params) == 2 and "a" in params
    del params["a"]
    assert dict(params) == {"b": 2}
    assert params.serialize()["b"]["schema"] == {"type": "integer"}


def test_task_params_override_dag_params() -> None:
    with DAG("d", params={"a": 1, "b": Param(2, type="integer"), "c": 3}):
        t = EmptyOperator(task_id="t", params={"a": 10, "new": "x"})
        other = EmptyOperator(task_id="o")
    assert dict(t.params) == {"a": 10, "b": 2, "c": 3, "new": "x"}
    assert dict(other.params) == {"a": 1, "b": 2, "c": 3}
    assert t.params.resolve({"c": 30}) == {"a": 10, "b": 2, "c": 30, "new": "x"}


def test_task_params_do_not_leak_into_the_dag() -> None:
    with DAG("d", params={"a": 1}) as d:
        EmptyOperator(task_id="t", params={"a": 2})
    assert dict(d.params) == {"a": 1}


def test_dag_param_schema_still_checked_for_tasks() -> None:
    with DAG("d", params={"n": Param(1, type="integer")}):
        t = EmptyOperator(task_id="t")
    with pytest.raises(InvalidInputError, match="'n'"):
        t.params.resolve({"n": "one"})


def test_dag_params_resolve_with_conf() -> None:
    d = DAG("d", params={"n": Param(1, type="integer", maximum=10)})
    assert d.params.resolve({"n": 10}) == {"n": 10}
    with pytest.raises(InvalidInputError, match="'n'"):
        d.params.resolve({"n": 11})


def test_task_plain_value_keeps_the_dag_params_schema() -> None:
    with DAG("schema_kept", schedule=None, params={"n": Param(1, type="integer", minimum=1)}):
        op = EmptyOperator(task_id="t", params={"n": 0})
    assert op.params["n"] == 0
    with pytest.raises(InvalidInputError, match="'n'"):
        op.params.resolve()
    assert op.params.resolve({"n": 5})["n"] == 5
