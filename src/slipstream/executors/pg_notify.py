"""Wake-ups across machines, carried by PostgreSQL's LISTEN/NOTIFY.

On PostgreSQL every process already reaches one server, wherever it runs: a ``NOTIFY`` on a
channel per role reaches every process that ``LISTEN``\\ s on it, within milliseconds, on
any host. :mod:`slipstream.executors.wakeup` uses this module beside its Unix sockets.

A listener holds one dedicated autocommit connection and reads notifications without
blocking (``fileno()`` becomes readable when one arrives). A lost connection is logged and
re-made, at most every :data:`RETRY_SECONDS`; after a reconnection the listener reports a
bare wake-up, since whatever was sent meanwhile is gone. Senders share one connection per
process and database. As with every wake-up, a lost notification costs a timer, never
correctness: the database holds the truth.
"""

from __future__ import annotations

import atexit
import logging
import os
import selectors
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

#: seconds between attempts to re-make a lost connection (listening or sending)
RETRY_SECONDS = 2.0
#: seconds one attempt may take: a wake-up must never hold a loop up for long
CONNECT_TIMEOUT = 5


def conninfo(database_url: str) -> str | None:
    """The libpq connection string of a PostgreSQL ``database_url``; None for any other."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


_PREFIX = "slipstream_wake_"


def channel(role: str) -> str:
    """The channel of a role; LISTEN/NOTIFY are per database, so installations never mix."""
    return f"{_PREFIX}{role}"


def _connect(info: str, purpose: str) -> psycopg.Connection[tuple[object, ...]]:
    import psycopg

    # Keepalives: a silently dropped connection (a host gone, a firewall) is noticed within
    # about a minute rather than never. The name shows what it is in pg_stat_activity.
    return psycopg.connect(
        info,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT,
        application_name=f"slipstream wake-ups: {purpose}",
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


class Listener:
    """LISTEN on one channel; its connection's socket is registered in ``selector`` while
    connected, so the owner's descriptor becomes readable when a notification arrives."""

    def __init__(self, info: str, channel_name: str, selector: selectors.BaseSelector) -> None:
        self._info = info
        self._channel = channel_name
        self._selector = selector
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._registered: int | None = None
        self._retry_at = 0.0
        #: the connection was lost or could not be made: said once, until it is back
        self._failing = False
        self._connect()

    def _connect(self) -> bool:
        import psycopg
        from psycopg import sql

        self._retry_at = time.monotonic() + RETRY_SECONDS
        try:
            conn = _connect(self._info, self._channel.removeprefix(_PREFIX))
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except psycopg.Error as exc:
            if not self._failing:
                log.warning(
                    "wake-ups from other hosts are off until PostgreSQL can be reached "
                    "(LISTEN %s failed: %s); retrying every %g s",
                    self._channel,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    RETRY_SECONDS,
                )
            self._failing = True
            return False
        self._conn = conn
        self._registered = conn.fileno()
        self._selector.register(self._registered, selectors.EVENT_READ)
        if self._failing:
            log.info("LISTEN %s restored: wake-ups from other hosts are back", self._channel)
            self._failing = False
        return True

    def drain(self) -> list[str]:
        """The payloads waiting, oldest first; never blocks for long. A lost connection is
        re-made here, and a re-made one reports one empty payload (a bare wake-up)."""
        import psycopg

        if self._conn is None:
            if time.monotonic() >= self._retry_at and self._connect():
                return [""]
            return []
        payloads: list[str] = []
        try:
            pgconn = self._conn.pgconn
            pgconn.consume_input()  # reads what the socket holds; libpq never blocks here
            while (note := pgconn.notifies()) is not None:
                payloads.append(note.extra.decode("utf-8", errors="replace"))
        except psycopg.Error as exc:
            log.warning("lost the LISTEN %s connection (%s); reconnecting", self._channel, exc)
            self._failing = True
            self._drop()
            if self._connect():
                payloads.append("")
        return payloads

    def _drop(self) -> None:
        if self._registered is not None:
            # Before closing: a closed descriptor's number may be reused at once.
            self._selector.unregister(self._registered)
            self._registered = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()


class Notifier:
    """Sends NOTIFYs over one connection, made when first needed and re-made when lost.
    Thread-safe: the web server's threads share it."""

    def __init__(self, info: str) -> None:
        self._info = info
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()
        self._retry_at = 0.0

    def notify(self, channel_name: str, payload: str) -> bool:
        """Send one notification; False (logged) if it could not be sent."""
        import psycopg

        with self._lock:
            if self._conn is None and time.monotonic() < self._retry_at:
                return False  # the server was unreachable a moment ago: don't stall the caller
            # Twice: a kept connection may have died with a server restart since last time.
            for _ in (1, 2):
                fresh = self._conn is None
                try:
                    if self._conn is None:
                        self._conn = _connect(self._info, "sending")
                    self._conn.execute("SELECT pg_notify(%s, %s)", (channel_name, payload))
                    return True
                except psycopg.Error as exc:
                    self._close_locked()
                    if fresh:
                        self._retry_at = time.monotonic() + RETRY_SECONDS
                        log.warning("could not send a wake-up over PostgreSQL: %s", exc)
                        return False
        return False

    def _close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()


_notifiers: dict[tuple[int, str], Notifier] = {}
_notifiers_lock = threading.Lock()
_atexit_registered = False


def notifier(info: str) -> Notifier:
    """This process's notifier for a database. Keyed by pid too: a forked child must never
    use (nor close) its parent's connection, so it leaves that one alone and makes its own."""
    global _atexit_registered
    key = (os.getpid(), info)
    with _notifiers_lock:
        found = _notifiers.get(key)
        if found is None:
            found = _notifiers[key] = Notifier(info)
            if not _atexit_registered:  # (a forked child inherits the registration)
                atexit.register(_close_notifiers)
                _atexit_registered = True
        return found


def _close_notifiers() -> None:
    pid = os.getpid()
    for (owner, _), each in list(_notifiers.items()):
        if owner == pid:
            each.close()
