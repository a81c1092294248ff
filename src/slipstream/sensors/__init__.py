"""Sensors for DAG files: ``from slipstream.sensors import FileSensor``."""

from slipstream.sdk.sensors import (
    BaseSensorOperator,
    DateTimeSensor,
    FileSensor,
    PokeReturnValue,
    PythonSensor,
    TimeDeltaSensor,
)

__all__ = [
    "BaseSensorOperator",
    "DateTimeSensor",
    "FileSensor",
    "PokeReturnValue",
    "PythonSensor",
    "TimeDeltaSensor",
]
