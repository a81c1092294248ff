"""The standard operators."""

from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.operators.bash import BashOperator
from slipstream.sdk.operators.branch import (
    BaseBranchOperator,
    BranchPythonOperator,
    ShortCircuitOperator,
)
from slipstream.sdk.operators.empty import EmptyOperator
from slipstream.sdk.operators.python import PythonOperator

__all__ = [
    "BaseBranchOperator",
    "BaseOperator",
    "BashOperator",
    "BranchPythonOperator",
    "EmptyOperator",
    "PythonOperator",
    "ShortCircuitOperator",
]
