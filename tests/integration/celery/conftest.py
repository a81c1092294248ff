"""Fixtures of the Celery executor's tests: a real broker (Redis, then RabbitMQ) of the
test's own, and a :class:`Cluster` of real processes on PostgreSQL that uses it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The process harness and the broker helpers live with the scheduling tests, which use them
# too (the executor contract); this folder has no package to import them from.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scheduling"))

from celery_brokers import BROKERS, Broker, celery_broker
from scheduling_cluster import Cluster


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    with celery_broker(request.param) as made:
        yield made


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return postgres_url


@pytest.fixture
def cluster(pg_url: str, home: Path, broker: Broker) -> Iterator[Cluster]:
    """Real processes (``slipstream scheduler``, ``slipstream celery worker``) on PostgreSQL
    and the test's broker, with short heartbeats so lost work is found within seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM__")}
    env.update(
        {
            "SLIPSTREAM_HOME": str(home),
            "SLIPSTREAM__DATABASE__URL": pg_url,
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
            "SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION": "false",
            "SLIPSTREAM__SCHEDULER__TASK_HEARTBEAT_TIMEOUT": "3",
            "SLIPSTREAM__WORKER__HEARTBEAT_INTERVAL": "0.5",
            "SLIPSTREAM__SCHEDULER__SWEEP_INTERVAL": "2",
            "SLIPSTREAM__CORE__KILLED_TASK_CLEANUP_TIME": "2",
            **broker.env(),
        }
    )
    c = Cluster(home, env)
    try:
        yield c
    finally:
        c.stop_all()  # before the broker fixture cleans up under the workers' feet
        if c._factory is not None:
            c._factory.kw["bind"].dispose()
