"""Wake-ups between processes: "something changed, look now".

The database holds every truth; a wake-up only saves the receiver from polling it. Each
listening process binds a Unix datagram socket named after its role and pid in a folder
private to the metadata database it serves; a sender writes one datagram to every socket of
a role. Nothing is lost if a datagram is: the receiver still wakes on its own timers, only
later. A socket whose process died is removed by the first sender that finds it refused.

Sockets reach one machine. Given a PostgreSQL ``database_url``, a sender also NOTIFYs the
role's channel and a listener also LISTENs on it (:mod:`slipstream.executors.pg_notify`),
so processes on other hosts wake too. Each notification names the socket folder it came
from (a random token stored in the folder): a listener drops those of its own folder,
which its socket delivered already, so a wake-up is acted on once. Both sources sit behind
one descriptor (the platform selector's own: epoll or kqueue), so callers select on
``fileno()`` and call ``drain()`` as before.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import selectors
import socket
import tempfile
from pathlib import Path

from slipstream.executors import pg_notify

SCHEDULER = "scheduler"
WORKER = "worker"

#: room for a DAG id and a run id, which is what a wake-up carries at most
_MAX_DATAGRAM = 4096


def wake_folder(database_url: str) -> Path:
    """The folder of the sockets of every process serving ``database_url``.

    Under the temporary folder rather than the home, because a socket path must stay under
    108 bytes; named by a hash of the URL, so two installations never wake each other.
    """
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"slipstream-{os.getuid()}" / digest
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _origin(folder: Path) -> str:
    """The token naming ``folder``'s processes in notifications: created once, atomically
    (a link of a complete file), so every process of the folder reads the same one."""
    path = folder / "origin"
    with contextlib.suppress(FileNotFoundError):
        return path.read_text()
    scratch = folder / f"origin.{os.getpid()}"
    scratch.write_text(secrets.token_hex(8))
    try:
        os.link(scratch, path)
    except FileExistsError:
        pass  # another process made it first: theirs holds
    finally:
        scratch.unlink()
    return path.read_text()


class WakeListener:
    """The receiving end of one process. ``fileno()`` becomes readable on a wake-up.

    With a PostgreSQL ``database_url`` it also receives the role's notifications from other
    hosts; ``drain()`` re-makes a lost LISTEN connection, so call it now and then even
    without a wake-up (a worker does on each heartbeat; the scheduler every pass)."""

    def __init__(self, folder: Path, role: str, *, database_url: str | None = None) -> None:
        self.path = folder / f"{role}-{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a previous process with our pid died without cleaning up
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.setblocking(False)
        self._both: selectors.BaseSelector | None = None
        self._pg: pg_notify.Listener | None = None
        info = pg_notify.conninfo(database_url) if database_url else None
        if info is not None:
            both = selectors.DefaultSelector()
            if not hasattr(both, "fileno"):  # poll/select platforms: sockets only
                both.close()
                return
            self._both = both
            both.register(self._sock, selectors.EVENT_READ)
            self._origin = _origin(folder)
            self._pg = pg_notify.Listener(info, pg_notify.channel(role), both)

    def fileno(self) -> int:
        if self._both is not None:
            return self._both.fileno()  # type: ignore[attr-defined, no-any-return]
        return self._sock.fileno()

    def drain(self) -> list[bytes]:
        """Every wake-up waiting, oldest first (per source: datagrams, then notifications)."""
        messages = []
        while True:
            try:
                messages.append(self._sock.recv(_MAX_DATAGRAM))
            except BlockingIOError:
                break
        if self._pg is not None and self._both is not None:
            for payload in self._pg.drain():
                origin, _, message = payload.partition(" ")
                if origin != self._origin:
                    messages.append(message.encode())
            self._both.select(0)  # settle the combined descriptor's ready list
        return messages

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        if self._both is not None:
            self._both.close()
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class WakeSender:
    """Sends wake-ups to every listener of a role: on this machine through the sockets, and
    with a PostgreSQL ``database_url`` on every host through a NOTIFY."""

    def __init__(self, folder: Path, *, database_url: str | None = None) -> None:
        self.folder = folder
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        info = pg_notify.conninfo(database_url) if database_url else None
        # Shared by the process: a sender made per wake-up must not connect each time.
        self._notifier = pg_notify.notifier(info) if info is not None else None
        self._origin = _origin(folder) if info is not None else ""

    def wake(self, role: str, message: bytes = b"") -> None:
        for path in self.folder.glob(f"{role}-*.sock"):
            try:
                self._sock.sendto(message[:_MAX_DATAGRAM], str(path))
            except BlockingIOError:
                pass  # its queue is full: it has wake-ups enough waiting
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()  # nobody listens there any more
        if self._notifier is not None:
            text = message[:_MAX_DATAGRAM].decode("utf-8", errors="replace")
            self._notifier.notify(pg_notify.channel(role), f"{self._origin} {text}")

    def close(self) -> None:
        self._sock.close()
