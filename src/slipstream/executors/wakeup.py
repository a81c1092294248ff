"""Wake-ups between the processes of one machine: "something changed, look now".

The database holds every truth; a wake-up only saves the receiver from polling it. Each
listening process binds a Unix datagram socket named after its role and pid in a folder
private to the metadata database it serves; a sender writes one datagram to every socket of
a role. Nothing is lost if a datagram is: the receiver still wakes on its own timers, only
later. A socket whose process died is removed by the first sender that finds it refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import tempfile
from pathlib import Path

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


class WakeListener:
    """The receiving end of one process. ``fileno()`` becomes readable on a wake-up."""

    def __init__(self, folder: Path, role: str) -> None:
        self.path = folder / f"{role}-{os.getpid()}.sock"
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a previous process with our pid died without cleaning up
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> list[bytes]:
        """Every datagram waiting, oldest first."""
        messages = []
        while True:
            try:
                messages.append(self._sock.recv(_MAX_DATAGRAM))
            except BlockingIOError:
                return messages

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class WakeSender:
    """Sends wake-ups to every listener of a role."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

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

    def close(self) -> None:
        self._sock.close()
