"""The template context: the names a template or a task callable can use, as in Airflow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slipstream.sdk.connection import Connection
from slipstream.sdk.macros import build_macros
from slipstream.sdk.variable import Variable

if TYPE_CHECKING:
    from slipstream.sdk.baseoperator import BaseOperator
    from slipstream.sdk.dag import DAG
    from slipstream.sdk.taskinstance import RuntimeTaskInstance

Context = dict[str, Any]


@dataclass
class DagRunInfo:
    """What a task knows of its DAG run (``dag_run`` in the context)."""

    dag_id: str
    run_id: str
    run_type: str
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    conf: dict[str, Any] = field(default_factory=dict)
    start_date: datetime | None = None
    run_after: datetime | None = None
    #: the latest successful run before this one, for the ``prev_*_success`` context keys
    prev_success: PreviousRun | None = None


@dataclass(frozen=True)
class PreviousRun:
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    start_date: datetime | None
    end_date: datetime | None


class _VariableAccessor:
    """``{{ var.value.key }}`` / ``{{ var.json.key }}``, read when used."""

    def __init__(self, deserialize_json: bool) -> None:
        self._json = deserialize_json

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return Variable.get(key, deserialize_json=self._json)

    def get(self, key: str, default: Any = None) -> Any:
        return Variable.get(key, default_var=default, deserialize_json=self._json)


class _ConnectionAccessor:
    """``{{ conn.my_conn.host }}``."""

    def __getattr__(self, conn_id: str) -> Connection:
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)
        return Connection.get(conn_id)

    def get(self, conn_id: str, default: Any = None) -> Any:
        try:
            return Connection.get(conn_id)
        except Exception:  # not found: the template asked for a default
            return default


def build_context(
    *,
    dag: DAG,
    task: BaseOperator,
    ti: RuntimeTaskInstance,
    dag_run: DagRunInfo,
    params: Mapping[str, Any],
) -> Context:
    logical_date = dag_run.logical_date
    prev = dag_run.prev_success
    ds = logical_date.strftime("%Y-%m-%d")
    ts = logical_date.isoformat()
    return {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "run_id": dag_run.run_id,
        "dag_run": dag_run,
        "conf": dag_run.conf,
        "params": dict(params),
        "logical_date": logical_date,
        "data_interval_start": dag_run.data_interval_start,
        "data_interval_end": dag_run.data_interval_end,
        "prev_data_interval_start_success": prev.data_interval_start if prev else None,
        "prev_data_interval_end_success": prev.data_interval_end if prev else None,
        "prev_start_date_success": prev.start_date if prev else None,
        "prev_end_date_success": prev.end_date if prev else None,
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "task_instance_key_str": f"{dag.dag_id}__{task.task_id}__{ds.replace('-', '')}",
        "try_number": ti.try_number,
        "map_index": ti.map_index,
        "var": {"value": _VariableAccessor(False), "json": _VariableAccessor(True)},
        "conn": _ConnectionAccessor(),
        "macros": build_macros(),
        "templates_dict": None,
        "inlets": [],
        "outlets": [],
    }


_current: list[Context] = []


def get_current_context() -> Context:
    """The context of the task running in this process (Airflow's ``get_current_context``)."""
    from slipstream.errors import SlipstreamError

    if not _current:
        raise SlipstreamError("get_current_context() was called outside of a running task")
    return _current[-1]


class set_current_context:
    def __init__(self, context: Context) -> None:
        self._context = context

    def __enter__(self) -> Context:
        _current.append(self._context)
        return self._context

    def __exit__(self, *exc: object) -> None:
        _current.pop()
