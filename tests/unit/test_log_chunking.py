"""How a worker cuts a try's log into chunks for the database: never inside a character,
offsets that are the log's byte offsets, text that keeps the byte length of what it stands
for; and when shipping is on."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from slipstream.config import load_config
from slipstream.errors import ConfigError
from slipstream.store.task_logs import storable_text, whole_characters
from slipstream.worker.log_shipping import Chunk, cut_chunks, shipping_enabled

MIXED = "a é € 𝄞\n"  # 1-, 2-, 3- and 4-byte characters


@pytest.mark.parametrize(
    ("data", "whole"),
    [
        (b"", 0),
        (b"abc", 3),
        ("é".encode(), 2),
        ("é".encode()[:1], 0),
        (b"ab" + "€".encode()[:2], 2),
        (b"ab" + "𝄞".encode()[:3], 2),
        (b"ab" + "𝄞".encode(), 6),
        ("€€".encode()[:4], 3),
    ],
)
def test_whole_characters_stops_before_a_character_cut_short(data: bytes, whole: int) -> None:
    assert whole_characters(data) == whole


def test_storable_text_keeps_the_byte_length_and_the_text() -> None:
    assert storable_text(MIXED.encode()) == MIXED
    odd = b"nul\x00 bad\xff\xfe end " + "€".encode()[:2]
    text = storable_text(odd)
    # NUL (PostgreSQL refuses it) and bytes that are no UTF-8 become one "?" each
    assert text == "nul? bad?? end ??"
    assert len(text.encode()) == len(odd)


def test_chunks_are_contiguous_whole_characters_of_at_most_the_chunk_size() -> None:
    data = (MIXED * 50).encode()
    for size in (4, 5, 7, 64):
        chunks = cut_chunks(data, 100, at_end=True, chunk_bytes=size)
        assert "".join(c.content for c in chunks) == MIXED * 50
        assert chunks[0].offset == 100
        for before, after in itertools.pairwise(chunks):
            assert after.offset == before.end
        assert all(0 < c.end - c.offset <= size for c in chunks)
        assert chunks[-1].end == 100 + len(data)


def test_a_character_cut_by_a_chunk_boundary_goes_whole_into_the_next_chunk() -> None:
    data = "ab€cd".encode()  # with 4-byte chunks the boundary falls inside the "€"
    chunks = cut_chunks(data, 0, at_end=True, chunk_bytes=4)
    assert chunks == [Chunk(0, "ab"), Chunk(2, "€c"), Chunk(6, "d")]


def test_a_half_written_character_waits_unless_the_log_has_ended() -> None:
    data = b"line\n" + "𝄞".encode()[:2]
    assert cut_chunks(data, 0, at_end=False) == [Chunk(0, "line\n")]
    # the try has ended: nothing will complete it, so it is stored as it is (length kept)
    assert cut_chunks(data, 0, at_end=True) == [Chunk(0, "line\n??")]
    assert cut_chunks("𝄞".encode()[:3], 9, at_end=False) == []


def test_random_cuts_rebuild_the_log_exactly() -> None:
    rng = random.Random(5)
    alphabet = ["a", "\n", "é", "€", "𝄞", " "]
    text = "".join(rng.choice(alphabet) for _ in range(3000))
    data = text.encode()
    stored: list[Chunk] = []
    shipped = 0
    while shipped < len(data):  # like heartbeats, each seeing a random amount written
        written = min(len(data), shipped + rng.randint(0, 40))
        new = cut_chunks(data[shipped:written], shipped, at_end=False, chunk_bytes=9)
        if new:
            assert new[0].offset == shipped
            shipped = new[-1].end
        stored += new
    assert "".join(c.content for c in stored) == text


@pytest.mark.parametrize(
    ("executor", "setting", "enabled"),
    [
        ("local", "auto", False),
        ("celery", "auto", True),
        ("local", "true", True),
        ("celery", "False", False),
        ("local", "ON", True),
    ],
)
def test_shipping_is_on_by_setting_or_for_executors_that_run_tasks_elsewhere(
    tmp_path: Path, executor: str, setting: str, enabled: bool
) -> None:
    env = {"SLIPSTREAM_HOME": str(tmp_path), "SLIPSTREAM__LOGGING__SHIP_TO_DATABASE": setting}
    config = load_config(env)
    if hasattr(config.core, "executor"):
        config = load_config({**env, "SLIPSTREAM__CORE__EXECUTOR": executor})
    elif executor != "local":
        pytest.skip("core.executor does not exist yet")
    assert shipping_enabled(config) is enabled


def test_a_bad_shipping_setting_is_named(tmp_path: Path) -> None:
    env = {"SLIPSTREAM_HOME": str(tmp_path), "SLIPSTREAM__LOGGING__SHIP_TO_DATABASE": "sometimes"}
    with pytest.raises(ConfigError, match=r"logging\.ship_to_database must be auto, true or false"):
        shipping_enabled(load_config(env))
