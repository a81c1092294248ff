"""slipstream: a fast, light workflow orchestrator with Apache Airflow's authoring API.

DAG files import from here::

    from slipstream import DAG, dag, task, chain, Param, Variable, Connection, TriggerRule

The names load on first use, so that importing a part of slipstream (``slipstream.cli``
for a command that never touches DAGs) does not pay for the whole authoring API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slipstream.sdk import (
        DAG,
        Connection,
        Param,
        TaskGroup,
        TriggerRule,
        Variable,
        XComArg,
        chain,
        cross_downstream,
        dag,
        get_current_context,
        task,
        task_group,
    )

__all__ = [
    "DAG",
    "Connection",
    "Param",
    "TaskGroup",
    "TriggerRule",
    "Variable",
    "XComArg",
    "chain",
    "cross_downstream",
    "dag",
    "get_current_context",
    "task",
    "task_group",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("slipstream.sdk"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'slipstream' has no attribute {name!r}")
