"""Real brokers for the Celery executor's tests — Redis and RabbitMQ — each test on its own.

Redis: each test takes a database number of its own (a lock key with a lifetime in
database 0, so two test processes never share one) and empties it before and after.
RabbitMQ: each test names its Celery queues with a token of its own and deletes them (and
the exchanges Celery declares after them) at the end. A broker that is not running skips the
test on a laptop and fails it under CI=true, like a missing PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

REDIS_URL = os.environ.get("SLIPSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379")
RABBITMQ_URL = os.environ.get("SLIPSTREAM_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = ("redis", "rabbitmq")
#: kombu's Redis transport keeps a queue's messages in one list per priority step
_REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _service_missing(what: str, exc: BaseException) -> None:
    """As tests/conftest.py: skip on a laptop, fail under CI."""
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Broker:
    kind: str
    url: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    queues: set[str] = field(default_factory=set)

    def queue(self, name: str) -> str:
        """A Celery queue (and the operator ``queue`` that routes to it) of this test only."""
        unique = f"{name}-{self.token}"
        self.queues.add(unique)
        return unique

    def env(self) -> dict[str, str]:
        """The settings of a scheduler and workers that use this broker."""
        return {"SLIPSTREAM__CORE__EXECUTOR": "celery", "SLIPSTREAM__CELERY__BROKER_URL": self.url}

    def waiting(self, queue: str) -> int:
        """Messages in ``queue`` that no worker has taken."""
        if self.kind == "redis":
            import redis

            client = redis.Redis.from_url(self.url)
            try:
                return sum(int(client.llen(queue + s)) for s in _REDIS_PRIORITY_SUFFIXES)
            finally:
                client.close()
        from kombu import Connection

        with Connection(self.url) as conn:
            try:
                _, count, _ = conn.default_channel.queue_declare(queue, passive=True)
            except conn.channel_errors:  # never declared: nothing was ever sent to it
                return 0
            return int(count)


@contextlib.contextmanager
def _redis_broker() -> Iterator[Broker]:
    import redis

    admin = redis.Redis.from_url(REDIS_URL + "/0")
    try:
        admin.ping()
    except redis.RedisError as exc:
        admin.close()
        _service_missing("Redis", exc)
    lock = None
    for number in range(1, 16):
        # A lifetime, so a test process killed mid-test frees its database in time.
        if admin.set(f"slipstream-test:db:{number}", os.getpid(), nx=True, ex=900):
            lock = number
            break
    if lock is None:
        admin.close()
        pytest.fail("every Redis test database (1-15) is taken")
    url = f"{REDIS_URL}/{lock}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield Broker("redis", url)
    finally:
        client.flushdb()
        client.close()
        admin.delete(f"slipstream-test:db:{lock}")
        admin.close()


@contextlib.contextmanager
def _rabbitmq_broker() -> Iterator[Broker]:
    from kombu import Connection

    conn = Connection(RABBITMQ_URL, connect_timeout=5)
    try:
        conn.connect()
    except Exception as exc:
        conn.release()
        _service_missing("RabbitMQ", exc)
    broker = Broker("rabbitmq", RABBITMQ_URL)
    try:
        yield broker
    finally:
        try:
            channel = conn.default_channel
            for queue in broker.queues:
                channel.queue_delete(queue)
                channel.exchange_delete(queue)
        finally:
            conn.release()


def celery_broker(kind: str) -> contextlib.AbstractContextManager[Broker]:
    """A broker of ``kind`` ("redis" or "rabbitmq") for one test, cleaned up after it."""
    return _redis_broker() if kind == "redis" else _rabbitmq_broker()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a worker, and a Celery worker's pool processes)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(x) for x in line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def handled_messages(log: str) -> int:
    """Task messages a Celery worker has finished with, by its log."""
    return len(re.findall(r"Task slipstream\.run_try\[[^\]]+\] succeeded", log))
