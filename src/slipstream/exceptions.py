"""Exceptions a task raises to steer its own outcome, under slipstream's and Airflow's names."""

from slipstream.errors import SensorTimeout, SlipstreamFailException, SlipstreamSkipException

#: Airflow's names, so DAG code written for Airflow reads the same here.
AirflowSkipException = SlipstreamSkipException
AirflowFailException = SlipstreamFailException
AirflowSensorTimeout = SensorTimeout

__all__ = [
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "SensorTimeout",
    "SlipstreamFailException",
    "SlipstreamSkipException",
]
