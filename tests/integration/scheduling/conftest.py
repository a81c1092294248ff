"""The ``cluster`` fixture: real scheduler and worker processes for each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from scheduling_cluster import Cluster


@pytest.fixture
def cluster(db_url: str, home: Path) -> Iterator[Cluster]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPSTREAM__")}
    env.update(
        {
            "SLIPSTREAM_HOME": str(home),
            "SLIPSTREAM__DATABASE__URL": db_url,
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
            "SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION": "false",
            # Short, so lost work is found within a test's patience.
            "SLIPSTREAM__SCHEDULER__TASK_HEARTBEAT_TIMEOUT": "3",
            "SLIPSTREAM__WORKER__HEARTBEAT_INTERVAL": "0.5",
            "SLIPSTREAM__SCHEDULER__SWEEP_INTERVAL": "2",
            "SLIPSTREAM__CORE__KILLED_TASK_CLEANUP_TIME": "2",
            "SLIPSTREAM__WORKER__SHUTDOWN_TIMEOUT": "20",
        }
    )
    c = Cluster(home, env)
    try:
        yield c
    finally:
        c.stop_all()
        if c._factory is not None:
            bind = c._factory.kw["bind"]
            bind.dispose()
