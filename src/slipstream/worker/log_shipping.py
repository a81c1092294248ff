"""Shipping task logs into the metadata database, so a log can be read from any host.

A try's log is a file on the host of the worker that runs it. With
``logging.ship_to_database`` on, the worker's :class:`LogShipper` also copies each running
try's log into the database, in chunks (``store/task_logs.py``): at every worker heartbeat
it appends what each log gained since the last one, and when a try ends it ships the rest
before the try's end is recorded, so a try that reads as finished has its whole log stored.
Readers elsewhere (``service/inspection.py``) fall back to these chunks when the file is
not on their host; a running try's log there is at most about one heartbeat behind.

Shipping never fails a try: a database error is logged and the same bytes are tried again
at the next heartbeat. What one try may store is capped (``logging.max_shipped_bytes_per_try``);
past the cap a last line says the log was truncated, and the file keeps everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import utcnow
from slipstream.config import Config
from slipstream.errors import ConfigError
from slipstream.store import task_logs as log_store
from slipstream.store.db import transaction
from slipstream.store.task_instances import TIKey

log = logging.getLogger(__name__)

#: the most of one try's log shipped per heartbeat: a try that prints a flood does not hold
#: the database's write lock for long (the rest follows, at the latest when the try ends)
TICK_BYTES = 1024 * 1024
#: the largest chunk (one row)
CHUNK_BYTES = 256 * 1024

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def shipping_enabled(config: Config) -> bool:
    """Whether workers ship task logs to the database: ``logging.ship_to_database``, where
    "auto" means on whenever tries may run on other hosts than the readers (an executor
    other than "local")."""
    value = config.logging.ship_to_database.strip().lower()
    if value == "auto":
        # core.executor comes with the Celery executor; without it every try runs locally.
        executor = str(getattr(config.core, "executor", "local")).strip().lower()
        return executor != "local"
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        f"logging.ship_to_database must be auto, true or false, not "
        f"{config.logging.ship_to_database!r}"
    )


@dataclass(frozen=True)
class Chunk:
    """A piece of a log to store: ``content`` starts at byte ``offset`` of the log."""

    offset: int
    content: str

    @property
    def end(self) -> int:
        return self.offset + len(self.content.encode())


def cut_chunks(
    data: bytes, offset: int, *, at_end: bool, chunk_bytes: int = CHUNK_BYTES
) -> list[Chunk]:
    """Cut ``data``, the log's bytes from byte ``offset``, into chunks of at most
    ``chunk_bytes`` that never split a character. Unless ``at_end`` (the log ends with
    ``data``), a character whose last bytes are not written yet is left for the next time:
    the chunks may cover less than ``data``, and the last one's end is where to go on."""
    if chunk_bytes < 4:
        raise ValueError("a chunk must hold at least one character (4 bytes)")
    chunks: list[Chunk] = []
    pos = 0
    while pos < len(data):
        piece = data[pos : pos + chunk_bytes]
        if not (at_end and pos + len(piece) == len(data)):
            # A piece of 4 bytes or more always starts a whole character, so only the
            # very end of ``data`` can come out empty here: that is a character half written.
            piece = piece[: log_store.whole_characters(piece)]
            if not piece:
                break
        chunks.append(Chunk(offset + pos, log_store.storable_text(piece)))
        pos += len(piece)
    return chunks


def truncation_note(cap: int, path: Path, hostname: str) -> str:
    return (
        f"[log truncated: only its first {cap} bytes were copied to the database "
        f"(logging.max_shipped_bytes_per_try); the whole log is {path} on {hostname}]\n"
    )


class ShippedTry(Protocol):
    """What the shipper needs to know of a try (the worker's ``TryRef`` is one)."""

    @property
    def dag_id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def map_index(self) -> int: ...
    @property
    def try_number(self) -> int: ...


@dataclass
class _Shipping:
    key: TIKey
    try_number: int
    path: Path
    #: bytes of the log stored so far: where the next chunk starts
    shipped: int = 0
    #: what is stored ends a line (or is nothing), so a note can start on a line of its own
    ends_line: bool = True
    #: the try has ended: ship the rest of its log, then forget it
    ended: bool = False


@dataclass
class _Plan:
    shipping: _Shipping
    chunks: list[Chunk] = field(default_factory=list)
    #: nothing will be left to ship once these chunks are stored
    done: bool = False


class LogShipper:
    """Copies the logs of the tries one worker runs into the database (see the module)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        enabled: bool,
        max_bytes_per_try: int,
        hostname: str,
        tick_bytes: int = TICK_BYTES,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.factory = factory
        self.enabled = enabled
        self.max_bytes_per_try = max_bytes_per_try
        self.hostname = hostname
        self.tick_bytes = tick_bytes
        self.chunk_bytes = chunk_bytes
        self._tries: dict[tuple[TIKey, int], _Shipping] = {}

    @classmethod
    def from_config(
        cls, config: Config, factory: sessionmaker[Session], hostname: str
    ) -> LogShipper:
        return cls(
            factory,
            enabled=shipping_enabled(config),
            max_bytes_per_try=config.logging.max_shipped_bytes_per_try,
            hostname=hostname,
        )

    def track(self, ref: ShippedTry, path: Path) -> None:
        """Ship the log of this try, written at ``path``, from now on."""
        if self.enabled:
            key = TIKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
            self._tries[(key, ref.try_number)] = _Shipping(key, ref.try_number, path)

    def ship(self) -> None:
        """Store what each log gained since the last call (at most ``tick_bytes`` a try),
        and the rest of the logs of ended tries whose last shipping failed."""
        if self._tries:
            self._ship(list(self._tries.values()))

    def finish(self, ref: ShippedTry) -> None:
        """The try ended: store the rest of its log now, then forget the try. Call it before
        recording the try's end. If the database fails, the next :meth:`ship` tries again."""
        key = TIKey(ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
        shipping = self._tries.get((key, ref.try_number))
        if shipping is not None:
            shipping.ended = True
            self._ship([shipping])

    @property
    def tracked(self) -> int:
        """How many tries still have log to ship."""
        return len(self._tries)

    def _ship(self, tries: list[_Shipping]) -> None:
        plans = [self._plan(s) for s in tries]
        failed: set[int] = set()
        if any(p.chunks for p in plans):
            try:
                with transaction(self.factory) as session:
                    now = utcnow()
                    for i, plan in enumerate(plans):
                        if plan.chunks and not self._store(session, plan, now):
                            failed.add(i)
            except Exception as exc:
                # Whatever went wrong (DatabaseError mostly, but a driver's own error can
                # escape too, e.g. SQLite's "locked" from store.db's BEGIN), the worker loop
                # and the try go on: the same bytes are shipped at the next heartbeat.
                log.warning(
                    "could not ship task logs to the database, will retry: %s: %s",
                    type(exc).__name__,
                    exc,
                )
                return
        for i, plan in enumerate(plans):
            s = plan.shipping
            if i not in failed and plan.chunks:
                s.shipped = plan.chunks[-1].end
                s.ends_line = plan.chunks[-1].content.endswith("\n")
            if i in failed or plan.done:
                self._tries.pop((s.key, s.try_number), None)

    def _store(self, session: Session, plan: _Plan, now: datetime) -> bool:
        """Add one try's chunks; False when they cannot be stored at all (its run was
        deleted meanwhile): the other tries' chunks still go in."""
        s = plan.shipping
        try:
            with session.begin_nested():
                for chunk in plan.chunks:
                    log_store.append_chunk(
                        session, s.key, s.try_number, chunk.offset, chunk.content, now
                    )
                session.flush()
        except (IntegrityError, DataError) as exc:
            log.warning(
                "stopped shipping the log of %s/%s/%s try %d to the database: %s",
                s.key.dag_id,
                s.key.run_id,
                s.key.task_id,
                s.try_number,
                exc.orig,
            )
            return False
        return True

    def _plan(self, s: _Shipping) -> _Plan:
        """What to store of one try's log now: read the bytes after the stored part."""
        room = max(0, self.max_bytes_per_try - s.shipped)
        want = room if s.ended else min(room, self.tick_bytes)
        try:
            with s.path.open("rb") as file:
                file.seek(s.shipped)
                raw = file.read(want + 1)  # one byte more: does the log go on past ``want``?
        except FileNotFoundError:  # not written yet (or removed): nothing to ship
            raw = b""
        except OSError as exc:
            log.warning("cannot read the task log %s to ship it: %s", s.path, exc)
            raw = b""
        over_cap = len(raw) > room
        follows = len(raw) > want
        chunks = cut_chunks(
            raw[:want], s.shipped, at_end=s.ended and not follows, chunk_bytes=self.chunk_bytes
        )
        if not over_cap:
            return _Plan(s, chunks, done=s.ended)
        end = chunks[-1].end if chunks else s.shipped
        ends_line = chunks[-1].content.endswith("\n") if chunks else s.ends_line
        note = ("" if ends_line else "\n") + truncation_note(
            self.max_bytes_per_try, s.path, self.hostname
        )
        return _Plan(s, [*chunks, Chunk(end, note)], done=True)
