"""The task instance a running task sees (``ti`` in the context): identity, try and XComs.

It is a plain object handed to the task by whoever runs it. XComs pushed during the try are
kept here and written by the runner together with the try's final state, in one transaction;
so are the tasks a branch or short-circuit task asks to skip (``skip_task_ids``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from slipstream.errors import XComError

if TYPE_CHECKING:
    from slipstream.sdk.baseoperator import BaseOperator

XCOM_RETURN_KEY = "return_value"


class XComReader(Protocol):
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
        """``(True, value)`` for a stored XCom, ``(False, None)`` when there is none. With
        ``include_prior_dates``, the latest value of this run or of an earlier run."""


def serialize_xcom(value: Any, *, task_id: str, key: str) -> str:
    """The JSON text stored for an XCom; a clear error for a value JSON cannot hold."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        what = "the return value" if key == XCOM_RETURN_KEY else f"XCom {key!r}"
        raise XComError(
            f"{what} of task {task_id!r} cannot be stored as an XCom: {exc} "
            "(XComs must be JSON-serializable: str, int, float, bool, None, list, dict)"
        ) from None


@dataclass
class RuntimeTaskInstance:
    task: BaseOperator
    dag_id: str
    run_id: str
    try_number: int
    max_tries: int = 0
    map_index: int = -1
    logical_date: datetime | None = None
    start_date: datetime | None = None
    hostname: str = ""
    log_path: str = ""
    xcom_reader: XComReader | None = None
    #: key -> JSON text of every XCom pushed during this try
    pushed: dict[str, str] = field(default_factory=dict)
    #: tasks of this run to mark skipped if this try succeeds (set by branch and
    #: short-circuit operators; the runner applies them with the try's end)
    skip_task_ids: list[str] = field(default_factory=list)
    state: str = "running"

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def operator(self) -> str:
        return type(self.task).__name__

    def xcom_push(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key:
            raise XComError(f"XCom key must be a non-empty string, not {key!r}")
        self.pushed[key] = serialize_xcom(value, task_id=self.task_id, key=key)

    def xcom_pull(
        self,
        task_ids: str | Iterable[str] | None = None,
        dag_id: str | None = None,
        key: str = XCOM_RETURN_KEY,
        include_prior_dates: bool = False,
        map_indexes: int | None = None,
        default: Any = None,
    ) -> Any:
        """The XCom ``key`` of ``task_ids`` in this run: one value for one id, a list for many."""
        if task_ids is None:
            task_ids = self.task_id
        single = isinstance(task_ids, str)
        ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
        values = [
            self._pull_one(t, dag_id or self.dag_id, key, map_indexes, default, include_prior_dates)
            for t in ids
        ]
        return values[0] if single else values

    def _pull_one(
        self,
        task_id: str,
        dag_id: str,
        key: str,
        map_index: int | None,
        default: Any,
        include_prior_dates: bool,
    ) -> Any:
        if task_id == self.task_id and dag_id == self.dag_id and key in self.pushed:
            return json.loads(self.pushed[key])
        if self.xcom_reader is None:
            return default
        found, value = self.xcom_reader.get_xcom(
            dag_id=dag_id,
            run_id=self.run_id,
            task_id=task_id,
            key=key,
            map_index=-1 if map_index is None else map_index,
            include_prior_dates=include_prior_dates,
        )
        return value if found else default
