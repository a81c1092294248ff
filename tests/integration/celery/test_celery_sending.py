"""The scheduler's side of the Celery executor against real brokers, in this process: what
a message carries and where it goes, a broker that is down, and the setups refused with
one sentence."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery_brokers import Broker

from slipstream.config import load_config
from slipstream.errors import ConfigError
from slipstream.executors import make_executor
from slipstream.executors.base import Workload
from slipstream.executors.celery import CeleryExecutor
from slipstream.executors.celery_app import TASK_NAME
from slipstream.executors.local import LocalExecutor

#: nothing listens on port 1
DEAD_REDIS = "redis://127.0.0.1:1/0"


def _take(broker: Broker, queue: str) -> tuple[dict[str, object], list[object]]:
    """The next message of ``queue``: its headers and its body (args, kwargs, options)."""
    from kombu import Connection, Exchange, Queue

    with Connection(broker.url) as conn:
        message = Queue(queue, Exchange(queue, "direct"), queue)(conn.default_channel).get(
            no_ack=True
        )
        assert message is not None, f"no message in {queue}"
        return dict(message.headers), list(message.decode())


def test_make_executor_follows_core_executor(home: Path) -> None:
    assert isinstance(make_executor(load_config({"SLIPSTREAM_HOME": str(home)})), LocalExecutor)
    celery_config = load_config(
        {"SLIPSTREAM_HOME": str(home), "SLIPSTREAM__CORE__EXECUTOR": "celery"}
    )
    assert isinstance(make_executor(celery_config), CeleryExecutor)
    wrong = load_config({"SLIPSTREAM_HOME": str(home), "SLIPSTREAM__CORE__EXECUTOR": "kubernetes"})
    with pytest.raises(ConfigError, match=r"core\.executor must be one of local, celery"):
        make_executor(wrong)


def test_one_message_per_try_on_the_queue_named_after_the_task(home: Path, broker: Broker) -> None:
    config = load_config({"SLIPSTREAM_HOME": str(home), **broker.env()})
    default, etl = broker.queue("default"), broker.queue("etl")
    first = Workload("d", "r", "extract", 1, queue=default)
    second = Workload("d", "r", "transform", 2, map_index=3, queue=etl, priority_weight=5)
    executor = CeleryExecutor(config)
    executor.start()
    try:
        executor.submit([first, second])
        executor.submit([])  # nothing to send: nothing is
    finally:
        executor.stop()

    assert (broker.waiting(default), broker.waiting(etl)) == (1, 1)
    for queue, workload in ((default, first), (etl, second)):
        headers, (args, kwargs, _) = _take(broker, queue)
        assert headers["task"] == TASK_NAME
        assert kwargs == {}
        # The message names the try and carries nothing else.
        assert [Workload.from_json(a) for a in args] == [workload]  # type: ignore[arg-type]
        assert json.loads(args[0]).keys() == {  # type: ignore[arg-type]
            "dag_id",
            "run_id",
            "task_id",
            "try_number",
            "map_index",
            "queue",
            "priority_weight",
        }


def test_a_broker_that_is_down_costs_a_warning_not_the_scheduler(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(
        {
            "SLIPSTREAM_HOME": str(home),
            "SLIPSTREAM__CORE__EXECUTOR": "celery",
            "SLIPSTREAM__CELERY__BROKER_URL": DEAD_REDIS,
        }
    )
    executor = make_executor(config)
    caplog.set_level(logging.WARNING, logger="slipstream.executors.celery")
    executor.start()
    try:
        assert f"cannot reach the Celery broker at {DEAD_REDIS}" in caplog.text
        started = time.monotonic()
        executor.submit([Workload("d", "r", t, 1) for t in ("a", "b", "c")])
        # One failed send ends the batch: the others would fail the same way, each slowly.
        assert time.monotonic() - started < config.celery.connect_timeout
        assert "could not send 3 of 3 queued tasks to the Celery broker" in caplog.text
        executor.submit([Workload("d", "r", "a", 1)])  # and it tries again next time
        assert "could not send 1 of 1" in caplog.text
    finally:
        executor.stop()


def _celery_worker(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slipstream", "celery", "worker"],
        env={"SLIPSTREAM_HOME": str(home), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_celery_worker_refuses_when_the_executor_is_local(home: Path) -> None:
    done = _celery_worker(home)
    assert done.returncode == 1
    assert "core.executor is 'local'" in done.stderr, done.stderr


def test_a_celery_worker_names_the_broker_it_cannot_reach(home: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "slipstream", "db", "migrate"],
        env={"SLIPSTREAM_HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    done = _celery_worker(
        home,
        SLIPSTREAM__CORE__EXECUTOR="celery",
        SLIPSTREAM__CELERY__BROKER_URL="amqp://guest:hush@127.0.0.1:1//",
    )
    assert done.returncode == 1
    assert "cannot reach the Celery broker at amqp://guest:**@127.0.0.1:1//" in done.stderr
    assert "hush" not in done.stderr + done.stdout
