"""The Celery application both sides of the Celery executor share: its settings and name.

The scheduler sends with it (:mod:`slipstream.executors.celery`) and ``slipstream celery
worker`` consumes with it (:mod:`slipstream.worker.celery_task`). Celery only delivers: a
message names a try (a :class:`~slipstream.executors.base.Workload` as JSON), the worker claims
that try in the database by compare-and-set, and there is no result backend — the database
holds every outcome.

The settings suit long tasks whose truth is elsewhere:

- a message is acknowledged when its task ends (``task_acks_late``) and goes back to the
  queue if the pool process running it dies (``task_reject_on_worker_lost``), so a worker
  lost between receiving and claiming loses nothing; a redelivery of a try that is already
  running or done finds it taken and runs nothing;
- each pool process reserves one message at a time (``worker_prefetch_multiplier``), so a
  long task never holds back messages another worker could run now;
- on Redis, an unacknowledged message is delivered again after ``visibility_timeout``, which
  must exceed the longest task to spare useless redeliveries.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from slipstream.config import Config
from slipstream.errors import ConfigError

#: the one Celery task: run the try a workload names
TASK_NAME = "slipstream.run_try"

_REDIS_SCHEMES = ("redis", "rediss", "sentinel")


def make_celery_app(config: Config) -> Celery:
    url = config.celery.broker_url
    timeout = config.celery.connect_timeout
    transport_options: dict[str, Any] = {}
    if url.split(":", 1)[0] in _REDIS_SCHEMES:
        transport_options = {
            "visibility_timeout": config.celery.visibility_timeout,
            # A broker that vanished without closing the connection must not hang the
            # scheduler's send (or a worker's ack) forever. Above the 1 s of kombu's BRPOP.
            "socket_connect_timeout": timeout,
            "socket_timeout": max(timeout, 2.0),
        }
    app = Celery("slipstream", set_as_current=False)
    app.conf.update(
        broker_url=url,
        broker_connection_timeout=timeout,
        # Say so now: Celery 6 stops reading broker_connection_retry for start-up.
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # One quick retry, then the scheduler moves on: the try stays queued in the
        # database, and the scheduler sends it again later.
        task_publish_retry_policy={
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        # A task that outlives a broker outage keeps running: the database judges its end,
        # and the redelivered message finds it taken. (Cancelling would waste the work.)
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # slipstream's own logging stays as set up; task output goes to each try's log.
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app


def shown_url(url: str) -> str:
    """The broker URL with its password hidden, for messages."""
    shown: str = maybe_sanitize_url(url)
    return shown


def check_broker(app: Celery) -> None:
    """Raise :class:`ConfigError` with one sentence when the broker cannot be reached."""
    url = app.conf.broker_url
    conn = app.connection_for_write()
    try:
        # One quick second attempt, for a broker that is just starting with the machine.
        conn.ensure_connection(max_retries=1, interval_start=0.5, interval_step=0, interval_max=0.5)
    except Exception as exc:  # whatever the transport raises, the broker is not usable
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot reach the Celery broker at {shown_url(url)} (celery.broker_url): {reason}"
        ) from None
    finally:
        conn.release()
