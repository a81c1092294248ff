"""Operators for DAG files: ``from slipstream.operators import BashOperator``."""

from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.operators import BashOperator, EmptyOperator, PythonOperator

__all__ = ["BaseOperator", "BashOperator", "EmptyOperator", "PythonOperator"]
