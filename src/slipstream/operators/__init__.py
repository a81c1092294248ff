"""Operators for DAG files: ``from slipstream.operators import BashOperator``."""

from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.operators import (
    BaseBranchOperator,
    BashOperator,
    BranchPythonOperator,
    EmptyOperator,
    PythonOperator,
    ShortCircuitOperator,
)

__all__ = [
    "BaseBranchOperator",
    "BaseOperator",
    "BashOperator",
    "BranchPythonOperator",
    "EmptyOperator",
    "PythonOperator",
    "ShortCircuitOperator",
]
