"""The authoring API: what DAG files import. Pure Python: no database, no web framework."""

from slipstream.errors import SlipstreamFailException, SlipstreamSkipException
from slipstream.sdk.baseoperator import BaseOperator, chain, cross_downstream
from slipstream.sdk.connection import Connection
from slipstream.sdk.context import Context, get_current_context
from slipstream.sdk.dag import DAG, dag
from slipstream.sdk.decorators import task
from slipstream.sdk.operators import BashOperator, EmptyOperator, PythonOperator
from slipstream.sdk.param import Param
from slipstream.sdk.sensors import BaseSensorOperator, PokeReturnValue
from slipstream.sdk.task_group import TaskGroup, task_group
from slipstream.sdk.variable import Variable
from slipstream.sdk.xcom_arg import XComArg
from slipstream.trigger_rule import TriggerRule

__all__ = [
    "DAG",
    "BaseOperator",
    "BaseSensorOperator",
    "BashOperator",
    "Connection",
    "Context",
    "EmptyOperator",
    "Param",
    "PokeReturnValue",
    "PythonOperator",
    "SlipstreamFailException",
    "SlipstreamSkipException",
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
