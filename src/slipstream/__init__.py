"""slipstream: a fast, light workflow orchestrator with Apache Airflow's authoring API.

DAG files import from here::

    from slipstream import DAG, dag, task, chain, Param, Variable, Connection, TriggerRule
"""

from slipstream.sdk import (
    DAG,
    Connection,
    Param,
    TriggerRule,
    Variable,
    XComArg,
    chain,
    cross_downstream,
    dag,
    get_current_context,
    task,
)

__all__ = [
    "DAG",
    "Connection",
    "Param",
    "TriggerRule",
    "Variable",
    "XComArg",
    "chain",
    "cross_downstream",
    "dag",
    "get_current_context",
    "task",
]
__version__ = "0.1.0"
