"""Sensors on a fake clock: poke loop, timeout, soft_fail, backoff, files, times, @task.sensor."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from slipstream import DAG, task
from slipstream.errors import DagDefinitionError, SensorTimeout, SlipstreamSkipException
from slipstream.exceptions import AirflowFailException, AirflowSensorTimeout
from slipstream.sdk.context import DagRunInfo
from slipstream.sdk.sensors.base import has_timed_out, next_poke_delay
from slipstream.sdk.sensors.python import DecoratedSensorOperator
from slipstream.sensors import (
    BaseSensorOperator,
    DateTimeSensor,
    FileSensor,
    PokeReturnValue,
    PythonSensor,
    TimeDeltaSensor,
)
from slipstream.states import TaskInstanceState
from slipstream.worker.execution import TryRequest, execute_task

#: the logical date (and data interval end) of the runs ``make_context`` (conftest.py) builds
LOGICAL_DATE = datetime(2024, 1, 15, 6, 30, tzinfo=UTC)
MakeContext = Callable[..., Any]


class FakeClock:
    """Monotonic and wall time that move only when the sensor sleeps."""

    def __init__(self, start: datetime = LOGICAL_DATE) -> None:
        self.start = start
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def utcnow(self) -> datetime:
        return self.start + timedelta(seconds=self.now)

    def install(self, sensor: BaseSensorOperator) -> FakeClock:
        sensor._clock = self.monotonic
        sensor._sleep = self.sleep
        if hasattr(sensor, "_utcnow"):
            sensor._utcnow = self.utcnow
        return self


def run(sensor: BaseSensorOperator, make_context: MakeContext, clock: FakeClock) -> Any:
    clock.install(sensor)
    ctx = make_context(sensor)
    sensor.render_template_fields(ctx)
    return sensor.execute(ctx)


def answers(*values: Any) -> Any:
    """A poke callable returning ``values`` one after the other (the last one forever)."""
    seq = list(values)
    calls: list[int] = []

    def poke() -> Any:
        calls.append(1)
        return seq[min(len(calls), len(seq)) - 1]

    poke.calls = calls  # type: ignore[attr-defined]
    return poke


# -- the pure decisions -------------------------------------------------------------------


def test_has_timed_out_only_past_the_timeout() -> None:
    assert not has_timed_out(started_at=100.0, now=159.9, timeout=60)
    assert has_timed_out(started_at=100.0, now=160.0, timeout=60)
    assert has_timed_out(started_at=100.0, now=100.0, timeout=0)


def delays(count: int, **kwargs: Any) -> list[float]:
    base = {
        "poke_interval": 10.0,
        "exponential_backoff": True,
        "max_wait": None,
        "started_at": 0.0,
        "now": 0.0,
        "timeout": 1e9,
    }
    return [next_poke_delay(poke_count=n, **{**base, **kwargs}) for n in range(1, count + 1)]


def test_next_poke_delay_is_the_interval_without_backoff() -> None:
    assert delays(4, exponential_backoff=False) == [10.0] * 4


def test_backoff_doubles_and_is_capped_by_max_wait() -> None:
    assert delays(6) == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0]
    assert delays(6, max_wait=60.0) == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]


def test_next_poke_delay_never_sleeps_past_the_timeout() -> None:
    common = {"poke_interval": 60.0, "poke_count": 1, "exponential_backoff": False}
    assert next_poke_delay(max_wait=None, started_at=0, now=100, timeout=130, **common) == 30
    assert next_poke_delay(max_wait=None, started_at=0, now=140, timeout=130, **common) == 0


def test_backoff_stays_finite_after_very_many_pokes() -> None:
    [delay] = [
        next_poke_delay(
            poke_interval=1,
            poke_count=5000,
            exponential_backoff=True,
            max_wait=None,
            started_at=0,
            now=0,
            timeout=1e30,
        )
    ]
    assert delay == 2.0**62


# -- the poke loop ------------------------------------------------------------------------


def test_pokes_until_true_sleeping_the_interval(make_context: MakeContext) -> None:
    poke = answers(False, False, True)
    with DAG("d"):
        sensor = PythonSensor(task_id="s", python_callable=poke, poke_interval=5)
    clock = FakeClock()
    assert run(sensor, make_context, clock) is None
    assert len(poke.calls) == 3
    assert clock.sleeps == [5.0, 5.0]


def test_poke_interval_as_timedelta_and_truthy_values(make_context: MakeContext) -> None:
    poke = answers(0, "", ["something"])
    with DAG("d"):
        sensor = PythonSensor(task_id="s", python_callable=poke, poke_interval=timedelta(minutes=2))
    clock = FakeClock()
    run(sensor, make_context, clock)
    assert clock.sleeps == [120.0, 120.0]


def test_poke_return_value_becomes_the_return_value(make_context: MakeContext) -> None:
    poke = answers(PokeReturnValue(False, "ignored"), PokeReturnValue(True, {"rows": 3}))
    with DAG("d"):
        sensor = PythonSensor(task_id="s", python_callable=poke, poke_interval=1)
    assert run(sensor, make_context, FakeClock()) == {"rows": 3}


def test_poke_return_value_is_pushed_as_an_xcom_by_the_runner() -> None:
    with DAG("d", start_date=LOGICAL_DATE) as dag:
        sensor = PythonSensor(
            task_id="s",
            python_callable=lambda: PokeReturnValue(is_done=True, xcom_value={"path": "/x"}),
        )
    dag_run = DagRunInfo("d", "r", "manual", LOGICAL_DATE, LOGICAL_DATE, LOGICAL_DATE)
    outcome = execute_task(TryRequest(dag, sensor, dag_run, {}, 1, 0), None)
    assert outcome.state is TaskInstanceState.SUCCESS
    assert json.loads(outcome.xcoms["return_value"]) == {"path": "/x"}


def test_python_sensor_gets_args_context_and_templates(make_context: MakeContext) -> None:
    seen: dict[str, Any] = {}

    def poke(a: int, ds: str, templates_dict: dict[str, Any], b: int = 0) -> bool:
        seen.update(a=a, ds=ds, b=b, templates_dict=templates_dict)
        return True

    with DAG("d"):
        sensor = PythonSensor(
            task_id="s",
            python_callable=poke,
            op_args=[1],
            op_kwargs={"b": 2},
            templates_dict={"day": "{{ ds_nodash }}"},
        )
    run(sensor, make_context, FakeClock())
    assert seen == {"a": 1, "ds": "2024-01-15", "b": 2, "templates_dict": {"day": "20240115"}}


def test_timeout_raises_sensor_timeout_which_is_not_retried(make_context: MakeContext) -> None:
    poke = answers(False)
    with DAG("d"):
        sensor = PythonSensor(task_id="s", python_callable=poke, poke_interval=10, timeout=35)
    clock = FakeClock()
    with pytest.raises(SensorTimeout, match="timeout of 35s"):
        run(sensor, make_context, clock)
    # pokes at 0, 10, 20, 30, then a last one at the deadline (35), then gives up
    assert clock.sleeps == [10, 10, 10, 5]
    assert len(poke.calls) == 5
    assert issubclass(SensorTimeout, AirflowFailException)
    assert AirflowSensorTimeout is SensorTimeout


def test_sensor_timeout_fails_the_try_even_with_retries_left() -> None:
    with DAG("d", start_date=LOGICAL_DATE) as dag:
        sensor = PythonSensor(
            task_id="s", python_callable=lambda: False, timeout=0, poke_interval=0, retries=3
        )
    dag_run = DagRunInfo("d", "r", "manual", LOGICAL_DATE, LOGICAL_DATE, LOGICAL_DATE)
    outcome = execute_task(TryRequest(dag, sensor, dag_run, {}, 1, 3), None)
    assert outcome.state is TaskInstanceState.FAILED
    assert outcome.error is not None and outcome.error.startswith("SensorTimeout: ")


def test_soft_fail_skips_on_timeout(make_context: MakeContext) -> None:
    with DAG("d"):
        sensor = PythonSensor(
            task_id="s", python_callable=lambda: False, timeout=30, poke_interval=10, soft_fail=True
        )
    with pytest.raises(SlipstreamSkipException, match="soft_fail"):
        run(sensor, make_context, FakeClock())


def test_soft_fail_skips_on_a_fail_signal_but_not_on_other_errors(
    make_context: MakeContext,
) -> None:
    def gives_up() -> bool:
        raise AirflowFailException("never coming")

    def breaks() -> bool:
        raise RuntimeError("bug")

    with DAG("d"):
        a = PythonSensor(task_id="a", python_callable=gives_up, soft_fail=True)
        b = PythonSensor(task_id="b", python_callable=breaks, soft_fail=True)
    with pytest.raises(SlipstreamSkipException):
        run(a, make_context, FakeClock())
    with pytest.raises(RuntimeError, match="bug"):
        run(b, make_context, FakeClock())


def test_silent_fail_keeps_poking_after_an_error(make_context: MakeContext) -> None:
    calls: list[int] = []

    def flaky() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("service down")
        return True

    with DAG("d"):
        sensor = PythonSensor(task_id="s", python_callable=flaky, poke_interval=1, silent_fail=True)
    run(sensor, make_context, FakeClock())
    assert len(calls) == 3


def test_exponential_backoff_in_the_loop_is_bounded_by_max_wait(
    make_context: MakeContext,
) -> None:
    poke = answers(*([False] * 6), True)
    with DAG("d"):
        sensor = PythonSensor(
            task_id="s",
            python_callable=poke,
            poke_interval=1,
            exponential_backoff=True,
            max_wait=timedelta(seconds=10),
        )
    clock = FakeClock()
    run(sensor, make_context, clock)
    assert clock.sleeps == [1, 2, 4, 8, 10, 10]
    assert sensor.max_wait == timedelta(seconds=10)


def test_reschedule_mode_is_accepted_and_waits_in_the_try(
    make_context: MakeContext, capsys: pytest.CaptureFixture[str]
) -> None:
    with DAG("d"):
        sensor = PythonSensor(
            task_id="s", python_callable=answers(False, True), mode="reschedule", poke_interval=3
        )
    clock = FakeClock()
    run(sensor, make_context, clock)
    assert sensor.reschedule and clock.sleeps == [3]
    assert "runs as 'poke'" in capsys.readouterr().out


def test_a_subclass_implements_poke(make_context: MakeContext) -> None:
    class CountingSensor(BaseSensorOperator):
        def __init__(self, *, target: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.target, self.count = target, 0

        def poke(self, context: Any) -> bool:
            self.count += 1
            return self.count >= self.target

    with DAG("d"):
        sensor = CountingSensor(task_id="s", target=4, poke_interval=0.5)
    clock = FakeClock()
    run(sensor, make_context, clock)
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_default_args_reach_sensor_arguments() -> None:
    with DAG("d", default_args={"poke_interval": 7, "timeout": 70, "soft_fail": True}):
        sensor = PythonSensor(task_id="s", python_callable=bool)
    assert (sensor.poke_interval, sensor.timeout, sensor.soft_fail) == (7.0, 70.0, True)


def test_defaults_match_airflow() -> None:
    sensor = PythonSensor(task_id="s", python_callable=bool)
    assert sensor.poke_interval == 60.0
    assert sensor.timeout == 7 * 24 * 3600.0
    assert (sensor.mode, sensor.soft_fail, sensor.silent_fail) == ("poke", False, False)
    assert (sensor.exponential_backoff, sensor.max_wait) == (False, None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poke_interval": -1}, "poke_interval must be a finite, non-negative"),
        ({"poke_interval": timedelta(seconds=-5)}, "poke_interval must be a finite"),
        ({"poke_interval": "60"}, "poke_interval must be a timedelta or a number"),
        ({"poke_interval": True}, "poke_interval must be a timedelta or a number"),
        ({"timeout": -0.5}, "timeout must be a finite, non-negative"),
        ({"timeout": float("inf")}, "timeout must be a finite"),
        ({"max_wait": -3}, "max_wait must be a finite, non-negative"),
        ({"mode": "smart"}, "mode must be one of poke, reschedule, not 'smart'"),
        ({"python_callable": "not callable"}, "python_callable must be callable"),
        ({"pokeinterval": 5}, "invalid arguments were passed to PythonSensor"),
    ],
)
def test_bad_arguments_are_dag_definition_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DagDefinitionError, match=message):
        PythonSensor(task_id="s", **{"python_callable": bool, **kwargs})


def test_time_sensor_argument_checks() -> None:
    with pytest.raises(DagDefinitionError, match="delta must be a timedelta"):
        TimeDeltaSensor(task_id="t", delta=60)  # type: ignore[arg-type]
    with pytest.raises(DagDefinitionError, match="target_time must be a datetime or a string"):
        DateTimeSensor(task_id="t", target_time=12)  # type: ignore[arg-type]


# -- FileSensor ---------------------------------------------------------------------------


class AppearsAfter:
    """Creates ``path`` (as a file) once the sensor has slept ``after`` seconds."""

    def __init__(self, clock: FakeClock, path: Path, after: float) -> None:
        self.clock, self.path, self.after = clock, path, after
        self.sleep = clock.sleep

    def __call__(self, seconds: float) -> None:
        self.sleep(seconds)
        if self.clock.now >= self.after:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("data")


def test_file_sensor_waits_for_a_file(make_context: MakeContext, tmp_path: Path) -> None:
    target = tmp_path / "in" / "data.csv"
    with DAG("d"):
        sensor = FileSensor(task_id="f", filepath=str(target), poke_interval=10)
    clock = FakeClock().install(sensor)
    sensor._sleep = AppearsAfter(clock, target, after=30)
    ctx = make_context(sensor)
    sensor.render_template_fields(ctx)
    sensor.execute(ctx)
    assert clock.sleeps == [10, 10, 10]


def test_file_sensor_templates_and_globs(make_context: MakeContext, tmp_path: Path) -> None:
    (tmp_path / "day=20240115").mkdir()
    (tmp_path / "day=20240115" / "part-0001.parquet").write_text("x")
    with DAG("d"):
        sensor = FileSensor(
            task_id="f", filepath=str(tmp_path / "day={{ ds_nodash }}" / "part-*.parquet")
        )
    run(sensor, make_context, FakeClock())
    assert sensor.filepath == str(tmp_path / "day=20240115" / "part-*.parquet")


def test_file_sensor_needs_a_matching_file(make_context: MakeContext, tmp_path: Path) -> None:
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "full_dir" / "sub").mkdir(parents=True)
    (tmp_path / "full_dir" / "sub" / "f.txt").write_text("x")
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.json").write_text("{}")

    def found(pattern: str, recursive: bool = False) -> bool:
        with DAG("d"):
            sensor = FileSensor(
                task_id="f", filepath=pattern, recursive=recursive, timeout=0, soft_fail=True
            )
        try:
            run(sensor, make_context, FakeClock())
        except SlipstreamSkipException:
            return False
        return True

    assert not found(str(tmp_path / "missing.txt"))
    assert not found(str(tmp_path / "empty_dir"))
    assert found(str(tmp_path / "full_dir"))
    assert not found(str(tmp_path / "*.json"))
    assert not found(str(tmp_path / "**" / "*.json"))  # ** needs recursive=True
    assert found(str(tmp_path / "**" / "*.json"), recursive=True)


def test_file_sensor_joins_the_fs_connection_path(
    make_context: MakeContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "ready.flag").write_text("")
    monkeypatch.setenv(
        "SLIPSTREAM_CONN_MY_FS",
        json.dumps({"conn_type": "fs", "extra": {"path": str(tmp_path / "landing")}}),
    )
    with DAG("d"):
        via_conn = FileSensor(task_id="a", filepath="ready.flag", fs_conn_id="my_fs")
        default = FileSensor(task_id="b", filepath=str(tmp_path / "landing" / "ready.flag"))
    run(via_conn, make_context, FakeClock())
    # fs_default does not exist: the path is used as given
    run(default, make_context, FakeClock())
    assert default.base_path() == ""


# -- time sensors -------------------------------------------------------------------------


def test_time_delta_sensor_waits_past_the_data_interval_end(make_context: MakeContext) -> None:
    # the context's data interval ends at LOGICAL_DATE; the clock starts there
    with DAG("d"):
        sensor = TimeDeltaSensor(task_id="t", delta=timedelta(minutes=5), poke_interval=60)
    clock = FakeClock(start=LOGICAL_DATE)
    run(sensor, make_context, clock)
    assert sum(clock.sleeps) == 360  # 5 minutes is not yet "past"; 6 is


def test_date_time_sensor_with_a_datetime_and_a_template(make_context: MakeContext) -> None:
    with DAG("d"):
        fixed = DateTimeSensor(
            task_id="fixed", target_time=datetime(2024, 1, 15, 6, 32), poke_interval=30
        )
        templated = DateTimeSensor(
            task_id="templated",
            target_time="{{ data_interval_end + macros.timedelta(minutes=1) }}",
            poke_interval=45,
        )
    clock = FakeClock(start=LOGICAL_DATE)  # 06:30 UTC
    run(fixed, make_context, clock)
    assert fixed.target_time == "2024-01-15T06:32:00"
    assert sum(clock.sleeps) == 150  # past 06:32 (naive = UTC) at the 5th sleep
    clock2 = FakeClock(start=LOGICAL_DATE)
    run(templated, make_context, clock2)
    assert templated.target() == datetime(2024, 1, 15, 6, 31, tzinfo=UTC)
    assert clock2.sleeps == [45, 45]


def test_date_time_sensor_in_the_past_is_done_at_once(make_context: MakeContext) -> None:
    with DAG("d"):
        sensor = DateTimeSensor(task_id="t", target_time="2020-01-01T00:00:00+02:00")
    clock = FakeClock()
    run(sensor, make_context, clock)
    assert clock.sleeps == []


def test_date_time_sensor_rejects_a_bad_rendered_time(make_context: MakeContext) -> None:
    with DAG("d"):
        sensor = DateTimeSensor(task_id="t", target_time="{{ ds }} at noon")
    with pytest.raises(DagDefinitionError, match="not an ISO 8601"):
        run(sensor, make_context, FakeClock())


# -- @task.sensor -------------------------------------------------------------------------


def test_task_sensor_decorator(make_context: MakeContext) -> None:
    calls: list[str] = []

    @task.sensor(poke_interval=2, timeout=60, mode="reschedule", retries=1)
    def wait_for_rows(table: str, ds: str | None = None) -> PokeReturnValue:
        calls.append(f"{table}@{ds}")
        return PokeReturnValue(len(calls) == 3, xcom_value={"table": table, "rows": 42})

    with DAG("d") as d:
        out = wait_for_rows("orders")
    sensor = out.operator
    assert isinstance(sensor, DecoratedSensorOperator)
    assert d.task_ids == ["wait_for_rows"]
    assert (sensor.poke_interval, sensor.timeout, sensor.mode, sensor.retries) == (
        2.0,
        60.0,
        "reschedule",
        1,
    )
    clock = FakeClock()
    assert run(sensor, make_context, clock) == {"table": "orders", "rows": 42}
    assert calls == ["orders@2024-01-15"] * 3
    assert clock.sleeps == [2, 2]


def test_task_sensor_bool_upstream_xcom_and_timeout(make_context: MakeContext) -> None:
    @task
    def upstream() -> str:
        return "/data/x"

    @task.sensor(timeout=5, poke_interval=1)
    def never(path: str) -> bool:
        assert path == "/data/x"
        return False

    @task.sensor
    def always() -> bool:
        return True

    with DAG("d"):
        waiting = never(upstream())
        done = always()
    sensor = waiting.operator
    assert sensor.upstream_task_ids == {"upstream"}
    clock = FakeClock().install(sensor)
    ctx = make_context(sensor, xcoms={("upstream", "return_value"): "/data/x"})
    sensor.render_template_fields(ctx)
    with pytest.raises(SensorTimeout):
        sensor.execute(ctx)
    assert sum(clock.sleeps) == 5
    assert run(done.operator, make_context, FakeClock()) is None


def test_task_sensor_multiple_outputs(make_context: MakeContext) -> None:
    @task.sensor(multiple_outputs=True)
    def ready() -> PokeReturnValue:
        return PokeReturnValue(True, {"a": 1, "b": 2})

    with DAG("d"):
        out = ready()
    ctx = make_context(out.operator)
    out.operator.execute(ctx)
    assert ctx["ti"].pushed == {"a": "1", "b": "2"}
