"""Task logs in the database: the chunks of each try's log, as workers ship them.

A try's stored log is one byte stream cut into chunks: each chunk starts at the byte offset
(in UTF-8) where the one before it ended and holds whole characters, so an offset means the
same here as in the log file it was shipped from, and a reader can resume anywhere. The
functions here only read and add rows; the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from slipstream.store.models import TaskLogChunk
from slipstream.store.task_instances import TIKey

#: chunks read per query while gathering a piece of a log
_PAGE = 64

# What a text column cannot hold, mapped to one byte each, so a chunk's text keeps the byte
# length of what it stands for: NUL (PostgreSQL refuses it) and the stand-ins that
# "surrogateescape" makes of bytes that are not UTF-8 (a log file holds none in practice:
# the worker writes it through a UTF-8 encoder).
_UNSTORABLE = {0: "?"} | {code: "?" for code in range(0xDC80, 0xDD00)}


def whole_characters(data: bytes) -> int:
    """How many leading bytes of ``data`` end on a UTF-8 character boundary, so a piece
    never splits a character (the rest comes with the next one)."""
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back for the lead
            continue
        if byte < 0xC0:  # ASCII: everything before it is whole
            return len(data)
        needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return len(data) - back if needed > back else len(data)
    return len(data)


def storable_text(data: bytes) -> str:
    """``data`` as text a chunk can hold, whose UTF-8 encoding is exactly as long as
    ``data`` (the same bytes when ``data`` is UTF-8 without NUL), so offsets stay true."""
    return data.decode("utf-8", errors="surrogateescape").translate(_UNSTORABLE)


@dataclass(frozen=True)
class StoredLog:
    """A piece of a try's stored log."""

    content: str
    #: the byte offset just past ``content``: where the next read starts
    next_offset: int
    #: where the stored log ends (in bytes): a read that stopped before it has more to get
    size: int


def _the_try(key: TIKey, try_number: int) -> list[ColumnElement[bool]]:
    return [
        TaskLogChunk.dag_id == key.dag_id,
        TaskLogChunk.run_id == key.run_id,
        TaskLogChunk.task_id == key.task_id,
        TaskLogChunk.map_index == key.map_index,
        TaskLogChunk.try_number == try_number,
    ]


def _of_try(key: TIKey, try_number: int) -> Select[int, str]:
    return select(TaskLogChunk.offset, TaskLogChunk.content).where(*_the_try(key, try_number))


def append_chunk(
    session: Session, key: TIKey, try_number: int, offset: int, content: str, now: datetime
) -> None:
    """Store ``content`` as the piece of the try's log that starts at byte ``offset``."""
    session.add(
        TaskLogChunk(
            dag_id=key.dag_id,
            run_id=key.run_id,
            task_id=key.task_id,
            map_index=key.map_index,
            try_number=try_number,
            offset=offset,
            content=content,
            created_at=now,
        )
    )


def stored_size(session: Session, key: TIKey, try_number: int) -> int | None:
    """Where the try's stored log ends, in bytes; None when nothing of it is stored."""
    last = session.execute(
        _of_try(key, try_number).order_by(TaskLogChunk.offset.desc()).limit(1)
    ).first()
    return None if last is None else last.offset + len(last.content.encode())


def read_chunks(
    session: Session, key: TIKey, try_number: int, from_offset: int, max_bytes: int
) -> StoredLog:
    """Up to ``max_bytes`` of the try's stored log from byte ``from_offset``, decoded (an
    offset inside a character gives a replacement character, as a file read would). A piece
    cut short by ``max_bytes`` ends on a whole character unless that would leave nothing."""
    size = stored_size(session, key, try_number) or 0
    if from_offset >= size:
        return StoredLog("", from_offset, size)
    start = session.execute(
        select(func.max(TaskLogChunk.offset)).where(
            *_the_try(key, try_number),
            TaskLogChunk.offset <= from_offset,
        )
    ).scalar_one_or_none()
    pieces: list[bytes] = []
    pos, wanted = from_offset, max_bytes
    cursor, inclusive = start or 0, True
    while wanted > 0:
        after = TaskLogChunk.offset >= cursor if inclusive else TaskLogChunk.offset > cursor
        rows = session.execute(
            _of_try(key, try_number)
            .where(after)
            .order_by(TaskLogChunk.offset, TaskLogChunk.id)
            .limit(_PAGE)
        ).all()
        for offset, content in rows:
            data = content.encode()
            if offset + len(data) <= pos:
                continue  # before the piece asked for, or a chunk stored twice
            # (a chunk past ``pos`` would mean a hole: none is ever written, but a reader
            # that met one would go on from the next chunk rather than stall)
            pos = max(pos, offset)
            piece = data[pos - offset : pos - offset + wanted]
            pieces.append(piece)
            pos += len(piece)
            wanted -= len(piece)
            if wanted <= 0:
                break
        if len(rows) < _PAGE:
            break
        cursor, inclusive = rows[-1].offset, False
    data = b"".join(pieces)
    if pos < size:
        whole = whole_characters(data)
        if whole > 0:
            pos -= len(data) - whole
            data = data[:whole]
    return StoredLog(data.decode("utf-8", errors="replace"), pos, size)
