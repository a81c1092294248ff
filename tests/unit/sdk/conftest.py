"""Helpers for the SDK tests: a real run context for one task, with XComs of upstream tasks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.context import Context, DagRunInfo, build_context
from slipstream.sdk.taskinstance import RuntimeTaskInstance

LOGICAL_DATE = datetime(2024, 1, 15, 6, 30, tzinfo=UTC)
RUN_ID = "scheduled__2024-01-15T06:30:00+00:00"


class StoredXComs:
    """An XComReader over a plain dict: {(task_id, key): value}."""

    def __init__(self, values: Mapping[tuple[str, str], Any]) -> None:
        self.values = dict(values)

    def get_xcom(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        map_index: int,
        include_prior_dates: bool = False,
    ) -> tuple[bool, Any]:
        if (task_id, key) in self.values:
            return True, self.values[(task_id, key)]
        return False, None


MakeContext = Callable[..., Context]


@pytest.fixture
def make_context() -> MakeContext:
    def make(
        task: BaseOperator,
        *,
        conf: dict[str, Any] | None = None,
        xcoms: Mapping[tuple[str, str], Any] | None = None,
        logical_date: datetime = LOGICAL_DATE,
        run_id: str = RUN_ID,
    ) -> Context:
        dag = task.dag
        dag_run = DagRunInfo(
            dag_id=dag.dag_id,
            run_id=run_id,
            run_type="scheduled",
            logical_date=logical_date,
            data_interval_start=logical_date - timedelta(days=1),
            data_interval_end=logical_date,
            conf=dict(conf or {}),
        )
        ti = RuntimeTaskInstance(
            task=task,
            dag_id=dag.dag_id,
            run_id=run_id,
            try_number=1,
            logical_date=logical_date,
            xcom_reader=StoredXComs(xcoms or {}),
        )
        params = task.params.resolve(conf)
        return build_context(dag=dag, task=task, ti=ti, dag_run=dag_run, params=params)

    return make
