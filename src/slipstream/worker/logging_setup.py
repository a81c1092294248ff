"""A task's output: everything it prints or logs goes to its try's log, secrets masked."""

from __future__ import annotations

import io
import logging
import sys
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
