"""Sensors: tasks that wait for a condition (a file, a moment, anything a function can check).

Each one pokes until its condition holds, sleeping ``poke_interval`` in between, and fails
with :class:`~slipstream.errors.SensorTimeout` (no retry) once ``timeout`` has passed.
"""

from slipstream.sdk.sensors.base import BaseSensorOperator, PokeReturnValue
from slipstream.sdk.sensors.date_time import DateTimeSensor, TimeDeltaSensor
from slipstream.sdk.sensors.filesystem import FileSensor
from slipstream.sdk.sensors.python import PythonSensor

__all__ = [
    "BaseSensorOperator",
    "DateTimeSensor",
    "FileSensor",
    "PokeReturnValue",
    "PythonSensor",
    "TimeDeltaSensor",
]
