"""A task's output: everything it prints or logs goes to its try's log, secrets masked."""

from __future__ import annotations

import codecs
import io
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from slipstream.masking import redact

LOG_FORMAT = "[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s"


class MaskingStream(io.TextIOBase):
    """A text stream that masks secrets line by line before writing to ``target``."""

    def __init__(self, target: IO[str]) -> None:
        self._target = target
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = self._partial + text
        lines = data.split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._target.write(redact(line) + "\n")
        self._target.flush()
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._target.write(redact(self._partial))
            self._partial = ""
        self._target.flush()

    def fileno(self) -> int:
        return self._target.fileno()

    def isatty(self) -> bool:
        return False


def capture_output(target: IO[str], level: int = logging.INFO) -> tuple[Any, Any]:
    """Send ``print`` and ``logging`` of this process through a masking stream to ``target``.
    Returns the previous (stdout, stderr) so a caller can restore them."""
    previous = (sys.stdout, sys.stderr)
    stream = MaskingStream(target)
    sys.stdout = sys.stderr = stream
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return previous


def pump_fds_to_log(log: IO[str], drain_timeout: float = 2.0) -> Callable[[], None]:
    """Point fd 1 and 2 at a pipe whose lines a thread masks and writes to ``log``.

    Returns the function that ends it: it closes this process's write ends and waits up to
    ``drain_timeout`` for the rest (a background program the task left behind may keep the
    pipe open; its later output is then lost rather than the try held up).
    """
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    stream = MaskingStream(log)

    def pump() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
        while chunk := os.read(read_fd, 65536):
            stream.write(decoder.decode(chunk))
        stream.write(decoder.decode(b"", final=True))
        stream.flush()
        os.close(read_fd)

    thread = threading.Thread(target=pump, name="log-pump", daemon=True)
    thread.start()

    def stop() -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        thread.join(drain_timeout)

    return stop
