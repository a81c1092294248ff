"""The serialized form of a DAG: what the DAG processor stores and everything else reads.

:func:`serialize_dag` turns an authored :class:`~slipstream.sdk.dag.DAG` into plain JSON data,
sorted so that parsing the same file twice gives the same bytes; :func:`dag_hash` is the
content hash used as the DAG's version. :class:`SerializedDag` is the typed, read-only view
the scheduler, the web UI and the CLI use: they never import user code (ADR: the scheduler
never runs user code), so this data is all they know about a DAG's structure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from slipstream.decisions import TaskNode, topological_order
from slipstream.errors import DagDefinitionError
from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.dag import DAG
from slipstream.sdk.operators.empty import EmptyOperator
from slipstream.sdk.param import _NOTSET, Param, ParamsDict
from slipstream.timetables import Timetable, deserialize_timetable, timezone_name
from slipstream.trigger_rule import TriggerRule

#: Bumped when the layout below changes incompatibly; readers refuse newer formats.
FORMAT_VERSION = 1


def serialize_dag(dag: DAG) -> dict[str, Any]:
    """The JSON-able description of ``dag``. Keys and lists are sorted: stable across parses."""
    totals = priority_weight_totals(dag)
    tasks = [_serialize_task(dag.task_dict[t], totals[t]) for t in sorted(dag.task_dict)]
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "dag_id": dag.dag_id,
        "display_name": dag.dag_display_name,
        "fileloc": dag.fileloc,
        "description": dag.description,
        "doc_md": dag.doc_md,
        "tags": sorted(dag.tags),
        "owner": dag.owner,
        "params": _jsonable(dag.params.serialize()),
        "timetable": dag.timetable.serialize(),
        "timetable_summary": dag.timetable.summary,
        "timetable_description": dag.timetable.description,
        "timezone": timezone_name(dag.timezone),
        "start_date": _iso(dag.start_date),
        "end_date": _iso(dag.end_date),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "dagrun_timeout": _seconds(dag.dagrun_timeout),
        "is_paused_upon_creation": dag.is_paused_upon_creation,
        "has_on_success_callback": dag.on_success_callback is not None,
        "has_on_failure_callback": dag.on_failure_callback is not None,
        "tasks": tasks,
        "task_groups": _serialize_task_groups(dag),
    }
    return data


def _serialize_task_groups(dag: DAG) -> list[dict[str, Any]]:
    """Every TaskGroup (the root excluded), sorted by id: enough for a UI to draw and fold
    groups without the DAG file. A top-level group's ``parent_group_id`` is None."""
    return [
        {
            "group_id": group_id,
            "label": group.label,
            "parent_group_id": group.parent_group.group_id if group.parent_group else None,
            "prefix_group_id": group.prefix_group_id,
            # task ids and group ids; the two never collide within a DAG
            "children": sorted(group.children),
            "tooltip": group.tooltip,
            "ui_color": group.ui_color,
            "ui_fgcolor": group.ui_fgcolor,
        }
        for group_id, group in sorted(dag.task_group_dict.items())
    ]


def _serialize_task(task: BaseOperator, weight_total: int) -> dict[str, Any]:
    callable_ = getattr(task, "python_callable", None)
    return {
        "task_id": task.task_id,
        "operator": getattr(task, "custom_operator_name", None) or type(task).__name__,
        "operator_class": type(task).__name__,
        "operator_module": type(task).__module__,
        "upstream_task_ids": sorted(task.upstream_task_ids),
        "downstream_task_ids": sorted(task.downstream_task_ids),
        "trigger_rule": str(TriggerRule(task.trigger_rule).value),
        "retries": task.retries,
        "retry_delay": _seconds(task.retry_delay),
        "retry_exponential_backoff": task.retry_exponential_backoff,
        "max_retry_delay": _seconds(task.max_retry_delay),
        "execution_timeout": _seconds(task.execution_timeout),
        "priority_weight": task.priority_weight,
        "weight_rule": task.weight_rule,
        "priority_weight_total": weight_total,
        "pool": task.pool,
        "pool_slots": task.pool_slots,
        "queue": task.queue,
        "depends_on_past": task.depends_on_past,
        "wait_for_downstream": task.wait_for_downstream,
        "template_fields": list(task.template_fields),
        # The unrendered values, for the UI and so that editing a command makes a new version.
        "template_values": {f: _jsonable(getattr(task, f, None)) for f in task.template_fields},
        "python_callable": (
            f"{callable_.__module__}.{callable_.__qualname__}"
            if callable(callable_) and hasattr(callable_, "__qualname__")
            else None
        ),
        "multiple_outputs": bool(task.multiple_outputs),
        "doc_md": task.doc_md,
        "ui_color": task.ui_color,
        "ui_fgcolor": task.ui_fgcolor,
        "owner": task.owner,
        # Nothing to run: the scheduler marks it success itself, as Airflow does.
        "is_empty": type(task) is EmptyOperator
        and not (task.on_execute_callback or task.on_success_callback),
        "task_group": task.task_group.group_id if task.task_group is not None else None,
    }


def priority_weight_totals(dag: DAG) -> dict[str, int]:
    """Airflow's weight rules: ``downstream`` = own weight + every descendant's, ``upstream`` =
    own + every ancestor's, ``absolute`` = own. Weights of relatives are their own weights."""
    totals: dict[str, int] = {}
    for task_id, task in dag.task_dict.items():
        if task.weight_rule == "absolute":
            relatives: set[str] = set()
        elif task.weight_rule == "upstream":
            relatives = _reachable(dag, task_id, lambda t: t.upstream_task_ids)
        else:
            relatives = _reachable(dag, task_id, lambda t: t.downstream_task_ids)
        totals[task_id] = task.priority_weight + sum(
            dag.task_dict[r].priority_weight for r in relatives
        )
    return totals


def _reachable(dag: DAG, start: str, step: Any) -> set[str]:
    seen: set[str] = set()
    stack = list(step(dag.task_dict[start]))
    while stack:
        node = stack.pop()
        if node in seen or node not in dag.task_dict:
            continue
        seen.add(node)
        stack.extend(step(dag.task_dict[node]))
    return seen


def canonical_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def dag_hash(data: Mapping[str, Any]) -> str:
    """The version of a serialized DAG: sha256 of its canonical JSON.

    The serialized form holds nothing volatile (no parse time, no file mtime), so parsing an
    unchanged file always gives the same hash.
    """
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _jsonable(value: Any) -> Any:
    """A JSON-able and deterministic stand-in for a user value (param default, template field).

    Anything JSON cannot hold becomes a short description without memory addresses, so the
    hash stays stable across parses.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return str(value) if isinstance(value, str) else value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v) for v in value), key=canonical_json_value)
    operator = getattr(value, "operator", None)
    if isinstance(operator, BaseOperator):  # an XComArg
        return f"<output of {operator.task_id}[{getattr(value, 'key', '')}]>"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<callable {getattr(value, '__module__', '?')}.{value.__qualname__}>"
    return f"<{type(value).__name__}>"


def canonical_json_value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# --- reading ------------------------------------------------------------------------


@dataclass(frozen=True)
class SerializedTask:
    """One task as the scheduler and the UI see it."""

    task_id: str
    operator: str
    operator_class: str
    operator_module: str
    upstream_task_ids: frozenset[str]
    downstream_task_ids: frozenset[str]
    trigger_rule: TriggerRule
    retries: int
    retry_delay: timedelta
    retry_exponential_backoff: bool
    max_retry_delay: timedelta | None
    execution_timeout: timedelta | None
    priority_weight: int
    weight_rule: str
    priority_weight_total: int
    pool: str
    pool_slots: int
    queue: str
    depends_on_past: bool
    wait_for_downstream: bool
    template_fields: tuple[str, ...]
    doc_md: str | None
    ui_color: str
    owner: str
    is_empty: bool
    #: the full id of the TaskGroup holding the task; None at the top level
    task_group: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SerializedTask:
        return cls(
            task_id=data["task_id"],
            operator=data["operator"],
            operator_class=data["operator_class"],
            operator_module=data["operator_module"],
            upstream_task_ids=frozenset(data["upstream_task_ids"]),
            downstream_task_ids=frozenset(data["downstream_task_ids"]),
            trigger_rule=TriggerRule(data["trigger_rule"]),
            retries=data["retries"],
            retry_delay=timedelta(seconds=data["retry_delay"]),
            retry_exponential_backoff=data["retry_exponential_backoff"],
            max_retry_delay=_delta(data["max_retry_delay"]),
            execution_timeout=_delta(data["execution_timeout"]),
            priority_weight=data["priority_weight"],
            weight_rule=data["weight_rule"],
            priority_weight_total=data["priority_weight_total"],
            pool=data["pool"],
            pool_slots=data["pool_slots"],
            queue=data["queue"],
            depends_on_past=data["depends_on_past"],
            wait_for_downstream=data["wait_for_downstream"],
            template_fields=tuple(data["template_fields"]),
            doc_md=data["doc_md"],
            ui_color=data["ui_color"],
            owner=data["owner"],
            is_empty=data["is_empty"],
            # absent from DAGs serialized before TaskGroups existed
            task_group=data.get("task_group"),
        )

    def node(self) -> TaskNode:
        return TaskNode(
            self.task_id,
            self.upstream_task_ids,
            self.trigger_rule,
            self.depends_on_past,
            self.wait_for_downstream,
        )


@dataclass(frozen=True)
class SerializedTaskGroup:
    """One TaskGroup as the UI sees it: ids and looks, no behaviour (groups only shape
    authoring; their dependencies are already task-to-task edges)."""

    group_id: str
    label: str
    parent_group_id: str | None
    prefix_group_id: bool
    children: tuple[str, ...]
    tooltip: str
    ui_color: str
    ui_fgcolor: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SerializedTaskGroup:
        return cls(
            group_id=data["group_id"],
            label=data["label"],
            parent_group_id=data["parent_group_id"],
            prefix_group_id=data["prefix_group_id"],
            children=tuple(data["children"]),
            tooltip=data["tooltip"],
            ui_color=data["ui_color"],
            ui_fgcolor=data["ui_fgcolor"],
        )


class SerializedDag:
    """A read-only view of a serialized DAG; building it runs no user code."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise DagDefinitionError(
                f"serialized DAG {data.get('dag_id')!r} has format version {version!r}, "
                f"this slipstream reads {FORMAT_VERSION}: run `slipstream dags reserialize`"
            )
        self.data = data
        self.dag_id: str = data["dag_id"]
        self.display_name: str = data.get("display_name") or self.dag_id
        self.fileloc: str = data["fileloc"]
        self.description: str | None = data["description"]
        self.doc_md: str | None = data["doc_md"]
        self.tags: tuple[str, ...] = tuple(data["tags"])
        self.owner: str = data["owner"]
        #: param name -> {"default", "has_default", "description", "schema"}
        self.params: dict[str, dict[str, Any]] = dict(data["params"])
        self.timezone: str = data["timezone"]
        self.start_date = _parse_dt(data["start_date"])
        self.end_date = _parse_dt(data["end_date"])
        self.catchup: bool = data["catchup"]
        self.max_active_runs: int | None = data["max_active_runs"]
        self.max_active_tasks: int | None = data["max_active_tasks"]
        self.dagrun_timeout = _delta(data["dagrun_timeout"])
        self.is_paused_upon_creation: bool | None = data["is_paused_upon_creation"]
        self.task_dict: dict[str, SerializedTask] = {
            t["task_id"]: SerializedTask.from_dict(t) for t in data["tasks"]
        }
        self._nodes: dict[str, TaskNode] | None = None
        self.task_groups: dict[str, SerializedTaskGroup] = {
            g["group_id"]: SerializedTaskGroup.from_dict(g) for g in data.get("task_groups", ())
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SerializedDag:
        return cls(data)

    def __repr__(self) -> str:
        return f"<SerializedDag: {self.dag_id}>"

    @cached_property
    def timetable(self) -> Timetable:
        return deserialize_timetable(dict(self.data["timetable"]))

    @property
    def timetable_summary(self) -> str:
        return str(self.data["timetable_summary"])

    @property
    def timetable_description(self) -> str:
        return str(self.data["timetable_description"])

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    @property
    def hash(self) -> str:
        return dag_hash(self.data)

    def task_nodes(self) -> dict[str, TaskNode]:
        """The decision inputs of every task (built once: a SerializedDag never changes)."""
        if self._nodes is None:
            self._nodes = {task_id: task.node() for task_id, task in self.task_dict.items()}
        return dict(self._nodes)

    @property
    def has_past_dependencies(self) -> bool:
        """Whether a run's tasks can wait on the previous run's (depends_on_past)."""
        return any(t.depends_on_past or t.wait_for_downstream for t in self.task_dict.values())

    def topological_order(self) -> list[str]:
        return list(topological_order(self.task_nodes()))

    def param_defaults(self) -> dict[str, Any]:
        return {name: p["default"] for name, p in self.params.items()}

    def resolve_params(self, conf: Mapping[str, Any] | None) -> dict[str, Any]:
        """The run's params from ``conf`` over the defaults, checked against each schema
        (InvalidInputError names the param), without importing the DAG file."""
        params = ParamsDict()
        for name, p in self.params.items():
            default = p["default"] if p["has_default"] else _NOTSET
            params[name] = Param(default, p.get("description"), **p["schema"])
        return params.resolve(conf)

    def group_task_ids(self, group_id: str) -> set[str]:
        """Every task in the group ``group_id``, those of its nested groups included."""
        found: set[str] = set()
        stack = [group_id]
        while stack:
            for child in self.task_groups[stack.pop()].children:
                if child in self.task_groups:
                    stack.append(child)
                else:
                    found.add(child)
        return found

    def descendants(self, task_ids: Iterable[str]) -> set[str]:
        """Every task downstream of ``task_ids`` (for "clear with downstream")."""
        seen: set[str] = set()
        stack = [d for t in task_ids for d in self.task_dict[t].downstream_task_ids]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.task_dict[node].downstream_task_ids)
        return seen


def _delta(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
